"""Spec parsing (defaults, errors naming the field), the job's outcome and status building (progress,
conditions, rate)."""

from __future__ import annotations

import pytest

from phashfleet.job.spec import SpecError, load_manifest, parse_spec
from phashfleet.job.status import RateMeter, conditions, job_outcome, job_status, progress_text
from phashfleet.state.store import JobSnapshot


def test_defaults_match_the_crd():
    spec = parse_spec({"source": {"uri": "file:///data"}})
    assert (spec.algorithm, spec.hash_size, spec.exact, spec.batch_size, spec.priority) == (
        "phash",
        8,
        False,
        64,
        "normal",
    )
    assert (spec.max_retries, spec.timeout_seconds, spec.ttl_seconds, spec.suspend) == (3, 60, 86400, False)
    assert "**/*.jpg" in spec.source["include"]
    assert spec.max_distance is None
    assert parse_spec({"source": {"uri": "/d"}, "duplicates": {}}).max_distance == 6


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({}, "spec.source"),
        ({"source": {}}, "spec.source"),
        ({"source": {"uri": "ftp://host/x"}}, "spec.source"),
        ({"source": {"uri": "/d"}, "hashSize": 3}, "spec.hashSize"),
        ({"source": {"uri": "/d"}, "algorithm": "md5"}, "spec.algorithm"),
        ({"source": {"uri": "/d"}, "batchSize": True}, "spec.batchSize"),
        ({"source": {"uri": "/d"}, "output": {"format": "csv"}}, "spec.output.uri"),
        ({"source": {"uri": "/d"}, "output": {"uri": "/o", "format": "xml"}}, "spec.output.format"),
        ({"source": {"uri": "/d"}, "algorithm": "whash", "hashSize": 12}, "spec.hashSize"),
        ({"source": {"uri": "/d"}, "algoritm": "dhash"}, "spec.algoritm"),
        ({"source": {"uri": "/d", "inclde": ["*.png"]}}, "spec.source.inclde"),
        ({"source": {"uri": "/d"}, "duplicates": {"distance": 3}}, "spec.duplicates.distance"),
        ({"source": {"uri": "/d"}, "exact": "yes"}, "spec.exact"),
        ({"source": {"uri": "/d"}, "suspend": 1}, "spec.suspend"),
        ({"source": {"uri": "/d", "include": "*.png"}}, "spec.source.include"),
        ({"source": {"uri": ""}}, "spec.source.uri"),
    ],
)
def test_bad_specs_name_the_field(spec, field):
    with pytest.raises(SpecError) as info:
        parse_spec(spec)
    assert info.value.field == field and str(info.value).startswith(field)


def test_an_unknown_field_is_refused_with_a_hint():
    with pytest.raises(SpecError, match=r"spec\.algoritm: unknown field \(did you mean algorithm\?\)"):
        parse_spec({"source": {"uri": "/d"}, "algoritm": "dhash"})
    with pytest.raises(SpecError, match="known fields: source, algorithm"):
        parse_spec({"source": {"uri": "/d"}, "zzz": 1})


def test_an_unknown_top_level_field_of_a_manifest_is_refused(tmp_path):
    manifest = tmp_path / "job.yaml"
    manifest.write_text("apiVersion: phashfleet.io/v1alpha1\nkind: PhashJob\nspecs: {}\n")
    with pytest.raises(SpecError) as info:
        load_manifest(manifest)
    assert info.value.field == "specs" and "did you mean spec?" in str(info.value)


def test_whash_takes_powers_of_two_and_nulls_are_dropped_as_the_apiserver_does():
    assert [n for n in range(4, 33) if _accepted({"algorithm": "whash", "hashSize": n})] == [4, 8, 16, 32]
    assert all(_accepted({"algorithm": "phash", "hashSize": n}) for n in range(4, 33))
    spec = parse_spec({"source": {"uri": "/d", "include": None}, "priority": None})
    assert spec.priority == "normal" and "**/*.jpg" in spec.source["include"]


def _accepted(fields: dict) -> bool:
    try:
        parse_spec({"source": {"uri": "/d"}, **fields})
    except SpecError:
        return False
    return True


@pytest.mark.parametrize(
    ("snap", "suspend", "outcome"),
    [
        (JobSnapshot(exists=True, total=10, listed=4, inflight=2), False, ("Running", "Hashing")),
        (JobSnapshot(exists=True, total=10, listed=4, inflight=2), True, ("Suspended", "Suspended")),
        (JobSnapshot(exists=True, total=5), True, ("Suspended", "Suspended")),
        (JobSnapshot(exists=True, listing_done=True), False, ("Succeeded", "NoFiles")),
        (
            JobSnapshot(exists=True, total=3, listed=3, listing_done=True, ok=1, failed=2),
            False,
            ("Succeeded", "Completed"),
        ),
        (JobSnapshot(exists=True, total=3, listed=3, listing_done=True, skipped=3), False, ("Succeeded", "Completed")),
        (JobSnapshot(exists=True, total=3, listed=3, listing_done=True, failed=3), False, ("Failed", "AllFilesFailed")),
        (
            JobSnapshot(exists=True, total=3, listed=3, listing_done=True, failed=2, skipped=1),
            True,
            ("Failed", "AllFilesFailed"),
        ),
    ],
)
def test_outcome_is_failed_when_files_were_found_and_none_was_hashed(snap, suspend, outcome):
    phase, reason, message = job_outcome(snap, suspend)
    assert (phase, reason) == outcome and message


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
