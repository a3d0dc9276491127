"""The PhashCronJob CRD: generated from the PhashJob CRD (no drift), its template schema the PhashJob spec schema."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
GENERATOR = ROOT / "crds" / "generate.py"
PHASHJOB = ROOT / "crds" / "phashjobs.phashfleet.io.yaml"


def _generator():
    spec = importlib.util.spec_from_file_location("crds_generate", GENERATOR)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GEN = _generator()


def _version(path: Path) -> dict:
    (version,) = yaml.safe_load(path.read_text())["spec"]["versions"]
    return version


@pytest.mark.parametrize("folder", ["crds", "charts/phash-fleet/crds"])
def test_checked_in_crd_is_what_the_generator_makes(folder):
    """Fails after an edit of the PhashJob CRD or the generator without a rerun: python crds/generate.py"""
    path = ROOT / folder / GEN.NAME
    assert path.exists(), f"{folder}/{GEN.NAME} is missing; run python crds/generate.py"
    assert path.read_text() == GEN.render(), f"{folder}/{GEN.NAME} is stale; run python crds/generate.py"


def _rules(schema, path=""):
    """(path, rule) of every CEL rule in a schema."""
    for rule in schema.get("x-kubernetes-validations", ()):
        yield path, rule["rule"]
    for key, sub in (schema.get("properties") or {}).items():
        yield from _rules(sub, f"{path}.{key}")
    if "items" in schema:
        yield from _rules(schema["items"], f"{path}[]")


def test_template_spec_is_the_phashjob_spec_schema_without_transition_rules():
    """Every field, default, bound and rule of a PhashJob spec, less the rules comparing with oldSelf."""
    job = _version(PHASHJOB)["schema"]["openAPIV3Schema"]["properties"]["spec"]
    cron = _version(ROOT / "crds" / GEN.NAME)["schema"]["openAPIV3Schema"]["properties"]["spec"]
    template = cron["properties"]["jobTemplate"]["properties"]["spec"]
    assert {k: v for k, v in template.items() if k != "description"} == {
        k: v for k, v in GEN.without_transition_rules(job).items() if k != "description"
    }
    assert set(template["properties"]) == set(job["properties"])
    kept = set(_rules(template))
    assert kept == {(p, r) for p, r in _rules(job) if "oldSelf" not in r}
    assert kept, "the hashSize rule of whash is kept"
    assert not any("oldSelf" in r for _, r in kept)


def test_cron_fields_defaults_and_names():
    version = _version(ROOT / "crds" / GEN.NAME)
    crd = yaml.safe_load((ROOT / "crds" / GEN.NAME).read_text())
    assert crd["spec"]["names"]["shortNames"] == ["phcj"] and crd["spec"]["names"]["kind"] == "PhashCronJob"
    assert version["name"] == "v1alpha1" and version["subresources"] == {"status": {}}
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert spec["required"] == ["schedule", "jobTemplate"]
    props = spec["properties"]
    assert props["concurrencyPolicy"]["enum"] == ["Allow", "Forbid", "Replace"]
    assert props["concurrencyPolicy"]["default"] == "Forbid"
    assert props["suspend"]["default"] is False
    assert props["successfulJobsHistoryLimit"]["default"] == 3 and props["successfulJobsHistoryLimit"]["minimum"] == 0
    assert props["failedJobsHistoryLimit"]["default"] == 1 and props["failedJobsHistoryLimit"]["minimum"] == 0
    assert props["startingDeadlineSeconds"]["minimum"] == 0
    status = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    assert set(status) == {"lastScheduleTime", "lastSuccessfulTime", "active"}
    assert [c["name"] for c in version["additionalPrinterColumns"]] == [
        "Schedule",
        "Suspend",
        "Active",
        "Last Schedule",
        "Age",
    ]


@pytest.mark.parametrize(
    ("schedule", "ok"),
    [
        ("* * * * *", True),
        ("0 2 * * *", True),
        ("*/15 9-17 * * MON-FRI", True),
        ("0 0 1,15 * ?", True),
        ("@daily", True),
        ("@hourly", True),
        ("* * * *", False),
        ("* * * * * *", False),
        ("CRON_TZ=UTC * * * * *", False),
        ("@every 5m", False),
        ("", False),
    ],
)
def test_schedule_rule_pattern(schedule, ok):
    """The CEL rule's regex (RE2; this subset reads the same in Python) refuses what is not a cron line."""
    assert bool(re.match(GEN.SCHEDULE_PATTERN, schedule)) is ok
