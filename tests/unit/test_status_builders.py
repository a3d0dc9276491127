"""job/status.py is the one place a PhashJob status is built: pending, waiting, failed and the full status,
for the operator and `phashfleet run` alike; no other module writes a phase with status fields by hand."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from phashfleet.job.spec import schema_of
from phashfleet.job.status import (
    ACTIVE,
    CONDITION_TYPES,
    ENDED,
    PHASE_CONDITION,
    PHASES,
    conditions,
    failed_status,
    job_status,
    pending_status,
    waiting_status,
)
from phashfleet.state.store import JobSnapshot

ROOT = Path(__file__).resolve().parents[2]
ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
#: Status fields that, beside "phase", make a dict a status built by hand (a log line's extra has none).
STATUS_FIELDS = {"conditions", "startTime", "completionTime", "progress", "succeeded", "rate", "failures"}


def _true(status: dict) -> dict:
    (condition,) = [c for c in status["conditions"] if c["status"] == "True"]
    return condition


def test_the_phases_and_condition_types_are_the_crds():
    assert PHASES == ("Pending", "Running", "Suspended", "Succeeded", "Failed")
    assert set(PHASE_CONDITION) == set(PHASES) and set(ENDED) | set(ACTIVE) < set(PHASES)
    condition_type = schema_of("status.conditions")["items"]["properties"]["type"]
    assert set(CONDITION_TYPES) == set(condition_type["enum"])


def test_a_job_just_accepted_is_pending_since_now():
    status = pending_status()
    assert status["phase"] == "Pending" and ISO.fullmatch(status["startTime"])
    assert set(status) == {"phase", "startTime"}


def test_a_waiting_job_keeps_an_active_phase_and_says_why():
    running = {"phase": "Running", "conditions": conditions("Running", "Hashing", "m", None, "T1")}
    status = waiting_status("RedisUnavailable", "Redis cannot be reached", running)
    assert set(status) == {"phase", "conditions"} and status["phase"] == "Running"
    progressing = _true(status)
    assert (progressing["type"], progressing["reason"]) == ("Progressing", "RedisUnavailable")
    assert progressing["lastTransitionTime"] == "T1"  # still Progressing: no transition
    assert waiting_status("SourceUnavailable", "m", {"phase": "Suspended"})["phase"] == "Suspended"
    assert waiting_status("SourceUnavailable", "m", {"phase": "Pending"})["phase"] == "Pending"
    assert waiting_status("SourceUnavailable", "m", {})["phase"] == "Pending"


def test_a_failed_status_ends_the_job_with_its_reason():
    previous = {"phase": "Pending", "conditions": conditions("Pending", "Hashing", "m", None, "T1")}
    status = failed_status("InvalidSpec", "spec.batchSize: must be <= 1000", previous)
    assert status["phase"] == "Failed" and ISO.fullmatch(status["completionTime"])
    failed = _true(status)
    assert (failed["type"], failed["reason"], failed["message"]) == (
        "Failed",
        "InvalidSpec",
        "spec.batchSize: must be <= 1000",
    )


def test_the_full_status_has_a_completion_time_once_the_phase_has_ended():
    snap = JobSnapshot(exists=True, total=4, listed=4, listing_done=True, ok=3, failed=1)
    common = {"reason": "r", "message": "m", "rate": 0.0, "failures": [], "extra": {"startTime": "T0"}}
    for phase in ENDED:
        status = job_status(snap, phase=phase, **common)
        assert ISO.fullmatch(status["completionTime"]) and status["startTime"] == "T0"
    for phase in ACTIVE:
        assert "completionTime" not in job_status(snap, phase=phase, **common)


def test_the_full_status_counts_cached_files_in_fields_the_crd_has():
    """status.cached says how many of the succeeded files the content cache served; every field is the CRD's."""
    snap = JobSnapshot(exists=True, total=4, listed=4, listing_done=True, ok=3, failed=1, cached=2)
    status = job_status(snap, phase="Succeeded", reason="r", message="m", rate=0.0, failures=[])
    assert (status["succeeded"], status["cached"]) == (3, 2)
    assert set(status) <= set(schema_of("status")["properties"])


def _hand_built_statuses(path: Path) -> list[str]:
    """Calls of conditions() and dicts with "phase" and another status field, outside job/status.py."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "conditions":
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}: conditions()")
        if isinstance(node, ast.Dict):
            names = {k.value for k in node.keys if isinstance(k, ast.Constant)}
            if "phase" in names and names & STATUS_FIELDS:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {sorted(names)}")
    return found


def test_no_module_but_job_status_builds_a_status():
    owner = ROOT / "worker" / "phashfleet" / "job" / "status.py"
    modules = [*(ROOT / "worker" / "phashfleet").rglob("*.py"), *(ROOT / "operator").rglob("*.py")]
    assert len(modules) > 40
    assert [hit for path in modules if path != owner for hit in _hand_built_statuses(path)] == []
    assert _hand_built_statuses(owner)  # the scan does see a status built by hand
