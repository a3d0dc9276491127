"""metrics.FileTally adds a batch's per-file counts to the job's metrics when flushed, as counting each file would."""

from __future__ import annotations

from prometheus_client import REGISTRY

from phashfleet import metrics

JOB = ("tally-ns", "tally-job")


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_counts_reach_the_metrics_on_flush_only():
    tally = metrics.FileTally(JOB, "dhash")
    records = [
        {"status": "ok", "bytes": 100, "reason": None},
        {"status": "ok", "bytes": 50, "reason": None, "cached": True},
        {"status": "failed", "bytes": None, "reason": "timeout: no result within 1 s"},
        {"status": "failed", "bytes": 7, "reason": "decode_error: truncated"},
        {"status": "skipped", "bytes": 3, "reason": "not_an_image: text (.txt)"},
    ]
    job = {"namespace": JOB[0], "phashjob": JOB[1]}
    before = value("phashfleet_hash_duration_seconds_count", algorithm="dhash")
    for record in records:
        tally.add(record)
    for seconds in (0.002, 0.02, 2.0):
        tally.timed(seconds)
    assert value("phashfleet_files_processed_total", **job, algorithm="dhash", result="ok") == 0
    tally.flush()
    assert value("phashfleet_files_processed_total", **job, algorithm="dhash", result="ok") == 2
    assert value("phashfleet_files_processed_total", **job, algorithm="dhash", result="failed") == 2
    assert value("phashfleet_files_processed_total", **job, algorithm="dhash", result="skipped") == 1
    assert value("phashfleet_file_failures_total", **job, result="failed", reason="timeout") == 1
    assert value("phashfleet_file_failures_total", **job, result="failed", reason="decode_error") == 1
    assert value("phashfleet_file_failures_total", **job, result="skipped", reason="not_an_image") == 1
    assert value("phashfleet_bytes_read_total", **job) == 160
    assert value("phashfleet_hash_duration_seconds_count", algorithm="dhash") == before + 3
    assert value("phashfleet_hash_duration_seconds_bucket", algorithm="dhash", le="0.0025") >= 1
    tally.flush()  # nothing counted twice
    assert value("phashfleet_files_processed_total", **job, algorithm="dhash", result="ok") == 2
    assert value("phashfleet_hash_duration_seconds_count", algorithm="dhash") == before + 3
