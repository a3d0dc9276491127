"""The PhashCronJob CRD on a real kube-apiserver: short name, defaults, errors naming the field, printer columns."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.manifests import variant

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "phashcronjob.yaml"

MINIMAL = {
    "apiVersion": "phashfleet.io/v1alpha1",
    "kind": "PhashCronJob",
    "metadata": {"name": "nightly"},
    "spec": {"schedule": "0 2 * * *", "jobTemplate": {"spec": {"source": {"uri": "file:///data/photos"}}}},
}


def _manifest(name: str, **spec) -> dict:
    return variant(MINIMAL, name, **spec)


def test_crd_is_established_with_short_name(control_plane):
    crd = control_plane.get_json("crd", "phashcronjobs.phashfleet.io")
    assert crd["spec"]["names"]["shortNames"] == ["phcj"]
    conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
    assert conditions["Established"] == "True" and conditions["NamesAccepted"] == "True"
    resources = control_plane.kubectl("api-resources", "--api-group=phashfleet.io").stdout
    assert "phcj" in resources and "PhashCronJob" in resources


def test_minimal_manifest_gets_cronjob_and_phashjob_defaults(control_plane, namespace):
    control_plane.apply(MINIMAL, namespace=namespace)
    spec = control_plane.get_json("phcj", "nightly", namespace=namespace)["spec"]
    assert spec["concurrencyPolicy"] == "Forbid"
    assert spec["suspend"] is False
    assert spec["successfulJobsHistoryLimit"] == 3 and spec["failedJobsHistoryLimit"] == 1
    assert "startingDeadlineSeconds" not in spec and "timeZone" not in spec
    template = spec["jobTemplate"]["spec"]
    assert template["algorithm"] == "phash" and template["batchSize"] == 64 and template["suspend"] is False


def test_the_example_is_accepted(control_plane, namespace):
    control_plane.kubectl("apply", "-f", str(EXAMPLE), "-n", namespace)
    spec = control_plane.get_json("phcj", "nightly-archive", namespace=namespace)["spec"]
    assert spec["timeZone"] == "Europe/Berlin" and spec["startingDeadlineSeconds"] == 3600
    assert spec["jobTemplate"]["spec"]["output"]["format"] == "jsonl"  # the PhashJob defaults apply


def test_template_may_change_unlike_a_phashjob_spec(control_plane, namespace):
    """The PhashJob's immutability rules are not in the template: a new algorithm applies to later runs."""
    control_plane.apply(MINIMAL, namespace=namespace)
    changed = _manifest(
        "nightly", jobTemplate={"spec": {"source": {"uri": "file:///data/other"}, "algorithm": "dhash"}}
    )
    control_plane.apply(changed, namespace=namespace)
    template = control_plane.get_json("phcj", "nightly", namespace=namespace)["spec"]["jobTemplate"]["spec"]
    assert template["algorithm"] == "dhash" and template["source"]["uri"] == "file:///data/other"


INVALID = [
    ("four-fields", {"schedule": "* * * *"}, "spec.schedule"),
    ("six-fields", {"schedule": "0 * * * * *"}, "spec.schedule"),
    ("tz-in-schedule", {"schedule": "CRON_TZ=UTC 0 2 * * *"}, "spec.schedule"),
    ("every", {"schedule": "@every 5m"}, "spec.schedule"),
    ("no-schedule", {"schedule": None}, "spec.schedule"),
    ("bad-policy", {"concurrencyPolicy": "Sometimes"}, "spec.concurrencyPolicy"),
    ("negative-deadline", {"startingDeadlineSeconds": -1}, "spec.startingDeadlineSeconds"),
    ("negative-history", {"successfulJobsHistoryLimit": -1}, "spec.successfulJobsHistoryLimit"),
    ("negative-failed", {"failedJobsHistoryLimit": -2}, "spec.failedJobsHistoryLimit"),
    ("bad-zone", {"timeZone": "Not A Zone"}, "spec.timeZone"),
    ("no-template", {"jobTemplate": None}, "spec.jobTemplate"),
    (
        "bad-algorithm",
        {"jobTemplate": {"spec": {"source": {"uri": "file:///d"}, "algorithm": "md5"}}},
        "spec.jobTemplate.spec.algorithm",
    ),
    ("no-source", {"jobTemplate": {"spec": {"algorithm": "dhash"}}}, "spec.jobTemplate.spec.source"),
    (
        "whash-12",
        {"jobTemplate": {"spec": {"source": {"uri": "file:///d"}, "algorithm": "whash", "hashSize": 12}}},
        "spec.jobTemplate.spec.hashSize",
    ),
]


@pytest.mark.parametrize(("name", "spec", "field"), INVALID, ids=[i[0] for i in INVALID])
def test_invalid_manifests_are_refused_naming_the_field(control_plane, namespace, name, spec, field):
    manifest = _manifest(name, **spec)
    manifest["spec"] = {k: v for k, v in manifest["spec"].items() if v is not None}
    result = control_plane.apply(manifest, namespace=namespace, check=False)
    assert result.returncode != 0, f"{name} was accepted"
    assert field in result.stderr, result.stderr


def test_a_name_longer_than_52_is_refused(control_plane, namespace):
    result = control_plane.apply(_manifest("n" * 53), namespace=namespace, check=False)
    assert result.returncode != 0 and "metadata.name must be at most 52 characters" in result.stderr, result.stderr


def test_printer_columns(control_plane, namespace):
    control_plane.apply(_manifest("cols", suspend=True), namespace=namespace)
    out = control_plane.kubectl("get", "phcj", "cols", "-n", namespace).stdout.splitlines()
    assert out[0].split() == ["NAME", "SCHEDULE", "SUSPEND", "ACTIVE", "LAST", "SCHEDULE", "AGE"]
    assert out[1].split()[:4] == ["cols", "0", "2", "*"] and "true" in out[1]


def test_explain_describes_the_fields(control_plane):
    text = control_plane.kubectl("explain", "phcj.spec").stdout
    for field in ("schedule", "concurrencyPolicy", "startingDeadlineSeconds", "jobTemplate", "timeZone"):
        assert field in text
    assert "Forbid" in text
    template = control_plane.kubectl("explain", "phcj.spec.jobTemplate.spec.algorithm").stdout
    assert "phash" in template
