"""Spec parsing (defaults, errors naming the field) and status building (progress, conditions, rate)."""

from __future__ import annotations

import pytest

from phashfleet.jobspec import SpecError, parse_spec
from phashfleet.status import RateMeter, conditions, job_status, progress_text
from phashfleet.store import JobSnapshot


def test_defaults_match_the_crd():
    spec = parse_spec({"source": {"uri": "file:///data"}})
    assert (spec.algorithm, spec.hash_size, spec.exact, spec.batch_size, spec.priority) == \
        ("phash", 8, False, 64, "normal")
    assert (spec.max_retries, spec.timeout_seconds, spec.ttl_seconds, spec.suspend) == (3, 60, 86400, False)
    assert "**/*.jpg" in spec.source["include"]
    assert spec.max_distance is None
    assert parse_spec({"source": {"uri": "/d"}, "duplicates": {}}).max_distance == 6


@pytest.mark.parametrize(("spec", "field"), [
    ({}, "spec.source"),
    ({"source": {}}, "spec.source"),
    ({"source": {"uri": "ftp://host/x"}}, "spec.source"),
    ({"source": {"uri": "/d"}, "hashSize": 3}, "spec.hashSize"),
    ({"source": {"uri": "/d"}, "algorithm": "md5"}, "spec.algorithm"),
    ({"source": {"uri": "/d"}, "batchSize": True}, "spec.batchSize"),
    ({"source": {"uri": "/d"}, "output": {"format": "csv"}}, "spec.output.uri"),
    ({"source": {"uri": "/d"}, "output": {"uri": "/o", "format": "xml"}}, "spec.output.format"),
])
def test_bad_specs_name_the_field(spec, field):
    with pytest.raises(SpecError) as info:
        parse_spec(spec)
    assert info.value.field == field and str(info.value).startswith(field)


def test_progress_text_rounds_down():
    assert progress_text(0, 10) == "0%"
    assert progress_text(999, 1000) == "99%"
    assert progress_text(1000, 1000) == "100%"
    assert progress_text(0, 0) == "100%"


def test_conditions_keep_transition_time_unless_status_flips():
    first = conditions("Running", "Hashing", "m", None, "T1")
    again = conditions("Running", "Hashing", "m", first, "T2")
    assert {c["type"]: c["lastTransitionTime"] for c in again}["Progressing"] == "T1"
    done = conditions("Succeeded", "Completed", "ok", again, "T3")
    by_type = {c["type"]: c for c in done}
    assert by_type["Complete"]["status"] == "True" and by_type["Complete"]["lastTransitionTime"] == "T3"
    assert by_type["Progressing"]["status"] == "False" and by_type["Progressing"]["lastTransitionTime"] == "T3"


def test_rate_meter_measures_files_per_second():
    meter = RateMeter(window_seconds=10)
    meter.update(0, at=0.0)
    assert meter.update(50, at=5.0) == pytest.approx(10.0)


def test_status_is_bounded_and_exact():
    snap = JobSnapshot(exists=True, total=30, listed=30, listing_done=True, ok=25, failed=3, skipped=2)
    failures = [{"path": f"/p{i}", "reason": "decode_error: x", "hash": None} for i in range(25)]
    status = job_status(snap, phase="Succeeded", reason="Completed", message="", rate=1.0, failures=failures)
    assert status["total"] == 30 and status["progress"] == "100%"
    assert len(status["failures"]) == 20 and set(status["failures"][0]) == {"path", "reason"}
