"""The PhashJob CRD on a real kube-apiserver: defaults, validation, printer columns, status subresource."""

from __future__ import annotations

import json

import pytest
import yaml

from harness.manifests import variant
from phashfleet.job.spec import SpecError, parse_spec

MINIMAL = {
    "apiVersion": "phashfleet.io/v1alpha1",
    "kind": "PhashJob",
    "metadata": {"name": "minimal"},
    "spec": {"source": {"uri": "file:///data/photos"}},
}


def _manifest(name: str, **spec) -> dict:
    return variant(MINIMAL, name, **spec)


def test_crd_is_established_with_short_name(control_plane):
    crd = control_plane.get_json("crd", "phashjobs.phashfleet.io")
    assert crd["spec"]["names"]["shortNames"] == ["phj"]
    conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
    assert conditions["Established"] == "True"
    assert conditions["NamesAccepted"] == "True"
    resources = control_plane.kubectl("api-resources", "--api-group=phashfleet.io", "-o", "wide").stdout
    assert "phj" in resources and "PhashJob" in resources


def test_minimal_manifest_comes_back_with_every_default(control_plane, namespace):
    control_plane.apply(MINIMAL, namespace=namespace)
    spec = control_plane.get_json("phj", "minimal", namespace=namespace)["spec"]
    assert spec["algorithm"] == "phash"
    assert spec["hashSize"] == 8
    assert spec["exact"] is False
    assert spec["batchSize"] == 64
    assert spec["priority"] == "normal"
    assert spec["maxRetries"] == 3
    assert spec["timeoutSeconds"] == 60
    assert spec["suspend"] is False
    assert spec["ttlSecondsAfterFinished"] == 86400
    assert "**/*.jpg" in spec["source"]["include"] and "**/*.png" in spec["source"]["include"]
    assert spec["source"]["exclude"] == [] and spec["source"]["files"] == []


def test_nested_defaults_fill_in(control_plane, namespace):
    manifest = _manifest("nested", output={"uri": "file:///out/x.jsonl"}, duplicates={})
    control_plane.apply(manifest, namespace=namespace)
    spec = control_plane.get_json("phj", "nested", namespace=namespace)["spec"]
    assert spec["output"]["format"] == "jsonl"
    assert spec["duplicates"]["maxDistance"] == 6


INVALID = [
    ("bad-algorithm", {"algorithm": "md5"}, "spec.algorithm"),
    ("hash-size-64", {"hashSize": 64}, "spec.hashSize"),
    ("hash-size-2", {"hashSize": 2}, "spec.hashSize"),
    ("batch-size-0", {"batchSize": 0}, "spec.batchSize"),
    ("batch-size-big", {"batchSize": 1001}, "spec.batchSize"),
    ("bad-priority", {"priority": "urgent"}, "spec.priority"),
    ("empty-source", {"source": {}}, "spec.source"),
    ("source-empty-files", {"source": {"files": []}}, "spec.source"),
    ("unknown-field", {"colour": "blue"}, "spec.colour"),
    ("output-no-uri", {"output": {"format": "csv"}}, "spec.output.uri"),
    ("output-bad-format", {"output": {"uri": "file:///o", "format": "xml"}}, "spec.output.format"),
    ("distance-17", {"duplicates": {"maxDistance": 17}}, "spec.duplicates.maxDistance"),
    ("timeout-0", {"timeoutSeconds": 0}, "spec.timeoutSeconds"),
    ("retries-negative", {"maxRetries": -1}, "spec.maxRetries"),
    ("suspend-string", {"suspend": "yes"}, "spec.suspend"),
    ("ttl-negative", {"ttlSecondsAfterFinished": -5}, "spec.ttlSecondsAfterFinished"),
    ("whash-12", {"algorithm": "whash", "hashSize": 12}, "spec.hashSize"),
    ("typo-field", {"algoritm": "dhash"}, "spec.algoritm"),
]


@pytest.mark.parametrize(("name", "spec", "field"), INVALID, ids=[i[0] for i in INVALID])
def test_invalid_manifest_is_refused_naming_the_field(control_plane, namespace, name, spec, field):
    result = control_plane.apply(_manifest(name, **spec), namespace=namespace, check=False)
    assert result.returncode != 0, f"{name} was accepted: {result.stdout}"
    assert field in result.stderr, result.stderr
    missing = control_plane.kubectl("get", "phj", name, "-n", namespace, check=False)
    assert missing.returncode != 0


@pytest.mark.parametrize(("name", "spec", "field"), INVALID, ids=[i[0] for i in INVALID])
def test_parse_spec_refuses_what_the_apiserver_refuses_naming_the_same_field(name, spec, field):
    """`phashfleet run` checks a manifest with parse_spec: the same refusals as above, without an apiserver."""
    with pytest.raises(SpecError) as info:
        parse_spec(_manifest(name, **spec)["spec"])
    assert info.value.field == field


def test_whash_sizes_the_apiserver_and_parse_spec_accept_are_the_same(control_plane, namespace):
    def apiserver_accepts(size: int) -> bool:
        text = yaml.safe_dump(_manifest(f"whash-{size}", algorithm="whash", hashSize=size))
        result = control_plane.kubectl("apply", "--dry-run=server", "-n", namespace, "-f", "-", input=text, check=False)
        assert result.returncode == 0 or "spec.hashSize" in result.stderr, result.stderr
        return result.returncode == 0

    def parse_spec_accepts(size: int) -> bool:
        try:
            parse_spec(_manifest("x", algorithm="whash", hashSize=size)["spec"])
        except SpecError:
            return False
        return True

    sizes = range(4, 33)
    assert [s for s in sizes if apiserver_accepts(s)] == [s for s in sizes if parse_spec_accepts(s)] == [4, 8, 16, 32]


def test_manifest_without_source_is_refused(control_plane, namespace):
    manifest = _manifest("no-source")
    del manifest["spec"]["source"]
    result = control_plane.apply(manifest, namespace=namespace, check=False)
    assert result.returncode != 0
    assert "spec.source" in result.stderr and "Required" in result.stderr


@pytest.mark.parametrize(
    ("field", "value"),
    [("algorithm", "dhash"), ("hashSize", 16), ("batchSize", 10), ("source", {"uri": "file:///elsewhere"})],
)
def test_spec_change_after_creation_is_refused(control_plane, namespace, field, value):
    control_plane.apply(_manifest("fixed"), namespace=namespace)
    result = control_plane.apply(_manifest("fixed", **{field: value}), namespace=namespace, check=False)
    assert result.returncode != 0
    assert f"spec.{field}" in result.stderr and "immutable" in result.stderr


@pytest.mark.parametrize(("field", "value"), [("output", {"uri": "file:///out/x.jsonl"}), ("duplicates", {})])
@pytest.mark.parametrize("change", ["add", "remove"])
def test_adding_or_removing_an_optional_field_is_refused(control_plane, namespace, field, value, change):
    name = f"presence-{field}-{change}"
    with_field, without = _manifest(name, **{field: value}), _manifest(name)
    first, then = (without, with_field) if change == "add" else (with_field, without)
    control_plane.apply(first, namespace=namespace)
    result = control_plane.apply(then, namespace=namespace, check=False)
    assert result.returncode != 0, f"{change} of spec.{field} was accepted"
    assert f"spec.{field}" in result.stderr and "immutable" in result.stderr, result.stderr
    assert (field in control_plane.get_json("phj", name, namespace=namespace)["spec"]) == (change == "remove")


def test_suspend_can_change_after_creation(control_plane, namespace):
    control_plane.apply(_manifest("pausable"), namespace=namespace)
    control_plane.kubectl(
        "patch", "phj", "pausable", "-n", namespace, "--type=merge", "-p", json.dumps({"spec": {"suspend": True}})
    )
    assert control_plane.get_json("phj", "pausable", namespace=namespace)["spec"]["suspend"] is True


def test_get_shows_printer_columns(control_plane, namespace):
    control_plane.apply(_manifest("columns"), namespace=namespace)
    control_plane.kubectl(
        "patch",
        "phj",
        "columns",
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": {"phase": "Running", "progress": "42%", "total": 1000, "succeeded": 420, "failed": 3}}),
    )
    out = control_plane.kubectl("get", "phj", "-n", namespace).stdout.splitlines()
    assert out[0].split() == ["NAME", "PHASE", "PROGRESS", "TOTAL", "SUCCEEDED", "FAILED", "AGE"]
    assert out[1].split()[:6] == ["columns", "Running", "42%", "1000", "420", "3"]


def test_wide_output_shows_the_reason_and_message_of_the_true_condition(control_plane, namespace):
    control_plane.apply(_manifest("wide"), namespace=namespace)
    conditions = [
        {
            "type": t,
            "status": "True" if t == "Failed" else "False",
            "reason": f"Job{t}",
            "message": "",
            "lastTransitionTime": "2025-01-01T00:00:00Z",
        }
        for t in ("Progressing", "Suspended", "Complete")
    ]
    conditions.append(
        {
            "type": "Failed",
            "status": "True",
            "reason": "AllFilesFailed",
            "message": "no file could be hashed",
            "lastTransitionTime": "2025-01-01T00:00:00Z",
        }
    )
    control_plane.kubectl(
        "patch",
        "phj",
        "wide",
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps(
            {
                "status": {
                    "phase": "Failed",
                    "progress": "100%",
                    "total": 3,
                    "succeeded": 0,
                    "failed": 3,
                    "conditions": conditions,
                }
            }
        ),
    )
    out = control_plane.kubectl("get", "phj", "wide", "-n", namespace, "-o", "wide").stdout.splitlines()
    assert out[0].split() == ["NAME", "PHASE", "PROGRESS", "TOTAL", "SUCCEEDED", "FAILED", "AGE", "REASON", "MESSAGE"]
    cells = out[1].split()
    assert cells[:6] == ["wide", "Failed", "100%", "3", "0", "3"]
    assert cells[7:] == ["AllFilesFailed", "no", "file", "could", "be", "hashed"]


def test_status_is_written_only_through_the_subresource(control_plane, namespace):
    manifest = _manifest("status-only")
    manifest["status"] = {"phase": "Succeeded", "succeeded": 99}
    control_plane.apply(manifest, namespace=namespace)
    assert (
        "status" not in control_plane.get_json("phj", "status-only", namespace=namespace)
        or control_plane.get_json("phj", "status-only", namespace=namespace)["status"].get("phase") is None
    )
    # A merge patch on the main resource drops status; the status subresource keeps it.
    control_plane.kubectl(
        "patch",
        "phj",
        "status-only",
        "-n",
        namespace,
        "--type=merge",
        "-p",
        json.dumps({"status": {"phase": "Failed"}}),
    )
    assert control_plane.get_json("phj", "status-only", namespace=namespace).get("status", {}).get("phase") is None
    control_plane.kubectl(
        "patch",
        "phj",
        "status-only",
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": {"phase": "Running", "total": 5}}),
    )
    status = control_plane.get_json("phj", "status-only", namespace=namespace)["status"]
    assert status == {"phase": "Running", "total": 5}


def test_status_failures_list_is_bounded(control_plane, namespace):
    control_plane.apply(_manifest("bounded"), namespace=namespace)
    failures = [{"path": f"/p/{i}.jpg", "reason": "decode_error: x"} for i in range(21)]
    result = control_plane.kubectl(
        "patch",
        "phj",
        "bounded",
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": {"failures": failures}}),
        check=False,
    )
    assert result.returncode != 0 and "status.failures" in result.stderr


def test_rbac_is_enforced(control_plane, namespace, tmp_path):
    control_plane.kubectl("create", "serviceaccount", "nobody", "-n", namespace)
    kubeconfig = control_plane.kubeconfig_for_service_account(namespace, "nobody", tmp_path / "nobody")
    denied = control_plane.kubectl("get", "phj", "-n", namespace, kubeconfig=kubeconfig, check=False)
    assert denied.returncode != 0 and "forbidden" in denied.stderr.lower()
    control_plane.apply(
        yaml.safe_load(f"""
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: phj-reader, namespace: {namespace}}}
rules: [{{apiGroups: [phashfleet.io], resources: [phashjobs], verbs: [get, list]}}]
""")
    )
    control_plane.kubectl(
        "create",
        "rolebinding",
        "nobody-reads",
        "-n",
        namespace,
        "--role=phj-reader",
        f"--serviceaccount={namespace}:nobody",
    )
    allowed = control_plane.kubectl("get", "phj", "-n", namespace, kubeconfig=kubeconfig, check=False)
    assert allowed.returncode == 0, allowed.stderr
    can_delete = control_plane.kubectl(
        "auth", "can-i", "delete", "phashjobs", "-n", namespace, kubeconfig=kubeconfig, check=False
    )
    assert can_delete.stdout.strip() == "no"
