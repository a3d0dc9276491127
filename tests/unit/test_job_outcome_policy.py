"""Honest end states decided in one place: spec.failurePolicy.maxFailedPercent, worker misconfiguration found
on the first batch, and the output checked before hashing (in `phashfleet run` too)."""

from __future__ import annotations

import pytest

from phashfleet.embedded.run import run_embedded
from phashfleet.files.outputs import OutputError, OutputOutsideRootsError, check_writable
from phashfleet.job import lister
from phashfleet.job.spec import SpecError, manifest_schema, parse_spec
from phashfleet.job.status import job_outcome, spec_outcome
from phashfleet.state.store import JobSnapshot


def _failed(path: str, reason: str) -> dict:
    return {"path": path, "status": "failed", "reason": reason}


# --- spec.failurePolicy.maxFailedPercent ------------------------------------------------------


def test_max_failed_percent_takes_integers_and_fractions_from_0_to_100():
    assert parse_spec({"source": {"uri": "/d"}}).max_failed_percent is None
    assert parse_spec({"source": {"uri": "/d"}, "failurePolicy": {"maxFailedPercent": 5}}).max_failed_percent == 5
    assert parse_spec({"source": {"uri": "/d"}, "failurePolicy": {"maxFailedPercent": 0.5}}).max_failed_percent == 0.5
    for bad in (-1, 100.5, True, "5%"):
        with pytest.raises(SpecError) as info:
            parse_spec({"source": {"uri": "/d"}, "failurePolicy": {"maxFailedPercent": bad}})
        assert info.value.field == "spec.failurePolicy.maxFailedPercent"


def test_the_crd_documents_the_range_and_refuses_a_change():
    prop = manifest_schema()["properties"]["spec"]["properties"]["failurePolicy"]
    field = prop["properties"]["maxFailedPercent"]
    assert (field["type"], field["minimum"], field["maximum"]) == ("number", 0, 100)
    assert "0 to 100" in field["description"] and "TooManyFailures" in field["description"]
    assert {"rule": "self == oldSelf", "message": "spec.failurePolicy is immutable once set"} in prop[
        "x-kubernetes-validations"
    ]


@pytest.mark.parametrize(
    ("snap", "limit", "outcome"),
    [
        # 3 of 10 failed is 30%: above 20, not above 30 (the limit itself is allowed).
        (JobSnapshot(exists=True, total=10, listed=10, listing_done=True, ok=7, failed=3), 20, "TooManyFailures"),
        (JobSnapshot(exists=True, total=10, listed=10, listing_done=True, ok=7, failed=3), 30, "Completed"),
        (JobSnapshot(exists=True, total=10, listed=10, listing_done=True, ok=7, failed=3), None, "Completed"),
        # Skipped files count in the total, as status.total does: 1 of 10 is 10%.
        (
            JobSnapshot(exists=True, total=10, listed=10, listing_done=True, ok=1, skipped=8, failed=1),
            9.5,
            "TooManyFailures",
        ),
        (JobSnapshot(exists=True, total=10, listed=10, listing_done=True, ok=9, failed=1), 0, "TooManyFailures"),
        # Certain before the end: the listing is done (10 files) and 4 already failed.
        (
            JobSnapshot(exists=True, total=10, listed=10, listing_done=True, ok=2, failed=4, inflight=1),
            30,
            "TooManyFailures",
        ),
        # Not yet certain: more files may still be listed.
        (JobSnapshot(exists=True, total=10, listed=6, ok=2, failed=4, inflight=1), 30, "Hashing"),
    ],
)
def test_a_job_above_max_failed_percent_ends_failed_saying_the_numbers(snap, limit, outcome):
    phase, reason, message = job_outcome(snap, False, max_failed_percent=limit)
    assert reason == outcome
    assert phase == {"TooManyFailures": "Failed", "Completed": "Succeeded", "Hashing": "Running"}[outcome]
    if outcome == "TooManyFailures":
        assert f"{snap.failed} of 10 files failed" in message and "spec.failurePolicy.maxFailedPercent" in message


def test_spec_outcome_reads_the_policy_from_the_spec():
    spec = parse_spec({"source": {"uri": "/d"}, "failurePolicy": {"maxFailedPercent": 10}})
    snap = JobSnapshot(exists=True, total=10, listed=10, listing_done=True, ok=8, failed=2)
    assert spec_outcome(snap, spec, [])[1] == "TooManyFailures"


# --- worker configuration errors on the first batch --------------------------------------------


OUTSIDE = [
    _failed(f"/data/p{i}.jpg", f"outside_roots: '/data/p{i}.jpg' is not under any allowed source root")
    for i in range(20)
]


def test_a_first_batch_that_failed_outside_the_roots_fails_the_job_naming_the_setting():
    snap = JobSnapshot(exists=True, total=201, listed=128, failed=64, inflight=1)
    phase, reason, message = job_outcome(snap, False, failures=OUTSIDE, first_batch=64)
    assert (phase, reason) == ("Failed", "WorkerConfiguration")
    assert "PHASHFLEET_ALLOWED_ROOTS" in message and "source.allowedRoots" in message and "64" in message


@pytest.mark.parametrize(
    ("snap", "failures"),
    [
        # Not yet a whole first batch back.
        (JobSnapshot(exists=True, total=201, listed=128, failed=10, inflight=2), OUTSIDE[:10]),
        # One file hashed: the workers can read the source.
        (JobSnapshot(exists=True, total=201, listed=128, ok=1, failed=64, inflight=1), OUTSIDE),
        # Failures of the files themselves.
        (
            JobSnapshot(exists=True, total=201, listed=128, failed=64, inflight=1),
            [_failed(f"/d/{i}.jpg", "decode_error: truncated") for i in range(20)],
        ),
        # Mixed causes: not one setting to blame.
        (
            JobSnapshot(exists=True, total=201, listed=128, failed=64, inflight=1),
            OUTSIDE[:10] + [_failed("/d/x.jpg", "decode_error: truncated")],
        ),
    ],
)
def test_other_first_batches_keep_the_job_running(snap, failures):
    assert job_outcome(snap, False, failures=failures, first_batch=64)[:2] == ("Running", "Hashing")


def test_a_small_job_is_judged_on_all_its_files_and_credentials_are_named():
    snap = JobSnapshot(exists=True, total=3, listed=3, listing_done=True, failed=3)
    failures = [_failed(f"s3://bucket/p{i}.jpg", "permission_denied: cannot read it") for i in range(3)]
    phase, reason, message = job_outcome(snap, False, failures=failures, first_batch=64)
    assert (phase, reason) == ("Failed", "WorkerConfiguration") and "source.s3.existingSecret" in message
    missing = [
        _failed(f"s3://bucket/p{i}.jpg", "read_error: NoCredentialsError: Unable to locate credentials")
        for i in range(3)
    ]
    assert job_outcome(snap, False, failures=missing, first_batch=64)[1] == "WorkerConfiguration"
    # A local file (or an HTTP one) the worker may not read is the file's problem, not a worker setting.
    for path in ("/d/p{}.jpg", "http://host/p{}.jpg"):
        denied = [_failed(path.format(i), "permission_denied: cannot read it") for i in range(3)]
        assert job_outcome(snap, False, failures=denied, first_batch=64)[1] == "AllFilesFailed"


def test_run_stops_a_job_whose_workers_cannot_read_its_files(tmp_path):
    """`phashfleet run` decides through the same job_outcome: the job ends after its first batches."""
    outside = tmp_path / "outside"
    outside.mkdir()
    files = []
    for i in range(200):
        (outside / f"p{i:03d}.jpg").write_bytes(b"\xff\xd8 not hashed anyway")
        files.append(str(outside / f"p{i:03d}.jpg"))
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    spec = parse_spec({"source": {"files": files}, "batchSize": 10})
    result = run_embedded(spec, "local.outside.1", (str(allowed),), jobs=1)
    status = result.status
    failed = {c["type"]: c for c in status["conditions"]}["Failed"]
    assert status["phase"] == "Failed" and failed["reason"] == "WorkerConfiguration", status
    assert "PHASHFLEET_ALLOWED_ROOTS" in failed["message"] and status["completionTime"]
    assert status["succeeded"] == 0 and 10 <= status["failed"] <= 30, status  # not all 200 hashed


# --- the output, checked before hashing ---------------------------------------------------------


def test_check_writable_refuses_before_writing_and_leaves_nothing(tmp_path):
    target = tmp_path / "out" / "result.jsonl"
    check_writable(str(target), "jsonl", allowed_roots=[str(tmp_path)])
    assert list((tmp_path / "out").iterdir()) == []
    with pytest.raises(OutputOutsideRootsError):
        check_writable(str(target), "jsonl", allowed_roots=[str(tmp_path / "elsewhere")])
    (tmp_path / "a-file").write_text("not a folder")
    with pytest.raises(OutputError, match="not writable"):
        check_writable(str(tmp_path / "a-file" / "result.jsonl"), "jsonl")
    with pytest.raises(OutputError, match="http"):
        check_writable("https://example.invalid/result.jsonl", "jsonl")
    with pytest.raises(OutputError, match="unknown output format"):
        check_writable(str(target), "xml")


def test_run_with_an_unusable_output_fails_before_hashing(tmp_path, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.jpg").write_bytes(b"x")
    (tmp_path / "a-file").write_text("not a folder")
    spec = parse_spec({"source": {"uri": str(data)}, "output": {"uri": str(tmp_path / "a-file" / "out.jsonl")}})
    listed = []
    monkeypatch.setattr(lister, "list_here", lambda *args, **kwargs: listed.append(args) or 0)
    status = run_embedded(spec, "local.out.1", (str(data),), jobs=1).status
    failed = {c["type"]: c for c in status["conditions"]}["Failed"]
    assert status["phase"] == "Failed" and failed["reason"] == "OutputFailed"
    assert failed["message"].startswith("spec.output.uri:") and "a-file" in failed["message"]
    assert listed == []  # nothing was listed, let alone hashed
