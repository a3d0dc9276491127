"""Completing batches and collecting a job on the in-memory job store and a real result store: a batch counts
once whichever delivery finishes it, the collector groups and writes from the parts, once, and says what failed."""

from __future__ import annotations

from phashfleet.files.outputs import read_records
from phashfleet.job.collect import CollectPlan, collect
from phashfleet.job.complete import complete_batch
from phashfleet.results import make_record
from phashfleet.state.memory_store import MemoryJobStore
from phashfleet.state.result_store import ResultStore

HASHES = ["ffff0000ffff0000", "ffff0000ffff0001", "0123456789abcdef", None]


def _job(tmp_path, batches: int = 2):
    store, results = MemoryJobStore(), ResultStore(str(tmp_path / "store"))
    store.create("ns.c.1", {"batch_size": 2}, 2 * batches)
    for b in range(batches):
        store.hand_out("ns.c.1", b, [f"/d/{b}-{i}.jpg" for i in range(2)], 0.0, b == batches - 1)
    return store, results, store.snapshot("ns.c.1").epoch


def _batch(b: int, hashes: list[str | None]) -> list[dict]:
    return [
        make_record(
            f"/d/{b}-{i}.jpg",
            algorithm="phash",
            hash_size=8,
            status="ok" if h else "failed",
            hash=h,
            reason=None if h else "decode_error: broken",
        )
        for i, h in enumerate(hashes)
    ]


def test_a_batch_counts_once_from_the_part_the_first_delivery_published(tmp_path):
    store, results, epoch = _job(tmp_path)
    assert complete_batch(store, results, "ns.c.1", epoch, 0, _batch(0, HASHES[:2])) == 1
    # A late second delivery that hashed differently (a file changed meanwhile) changes nothing.
    assert complete_batch(store, results, "ns.c.1", epoch, 0, _batch(0, [None, None])) == 0
    snap = store.snapshot("ns.c.1")
    assert (snap.ok, snap.failed) == (2, 0)
    assert [r["hash"] for r in results.iter_records("ns.c.1", epoch)] == HASHES[:2]


def test_a_worker_killed_between_part_and_count_leaves_a_part_the_next_delivery_counts(tmp_path):
    store, results, epoch = _job(tmp_path)
    results.publish_part("ns.c.1", epoch, 1, _batch(1, HASHES[2:]))  # ... and then the worker died
    assert store.snapshot("ns.c.1").done_files == 0
    assert complete_batch(store, results, "ns.c.1", epoch, 1, _batch(1, HASHES[:2])) == 1
    snap = store.snapshot("ns.c.1")
    assert (snap.ok, snap.failed) == (1, 1), "counted from the published part, not from the redelivery's records"
    assert store.failures("ns.c.1")[0]["path"] == "/d/1-1.jpg"


def test_the_collector_groups_and_writes_from_the_parts_once(tmp_path):
    store, results, epoch = _job(tmp_path)
    complete_batch(store, results, "ns.c.1", epoch, 0, _batch(0, HASHES[:2]))
    complete_batch(store, results, "ns.c.1", epoch, 1, _batch(1, HASHES[2:]))
    results.publish_part("ns.c.1", "stale-epoch", 0, _batch(0, HASHES[:2]))  # a start-over's leftovers
    out = tmp_path / "out" / "r.jsonl"
    plan = CollectPlan(max_distance=2, output_uri=str(out), output_format="jsonl", ttl_seconds=100)
    report = collect(store, results, "ns.c.1", plan, output_roots=(str(tmp_path / "out"),), now=1000.0)
    assert report == {"duplicateGroups": 1, "duplicateFiles": 2, "outputUri": str(out)}
    assert store.snapshot("ns.c.1").collected == report
    written = list(read_records(str(out)))
    assert [(r["path"], r["group"]) for r in written] == [
        ("/d/0-0.jpg", 0),
        ("/d/0-1.jpg", 0),
        ("/d/1-0.jpg", None),
        ("/d/1-1.jpg", None),
    ]
    assert results.epochs("ns.c.1") == [epoch] and results.expires_at("ns.c.1") == 1100.0
    assert collect(store, results, "ns.c.1", plan, output_roots=None, now=1001.0) is None  # collected before


def test_an_output_the_collector_cannot_write_is_a_report_naming_the_field(tmp_path):
    store, results, epoch = _job(tmp_path, batches=1)
    complete_batch(store, results, "ns.c.1", epoch, 0, _batch(0, HASHES[:2]))
    plan = CollectPlan(output_uri="/etc/phashfleet-r.jsonl", output_format="jsonl")
    report = collect(store, results, "ns.c.1", plan, output_roots=(str(tmp_path),), now=0.0)
    assert report is not None and report["error"].startswith("spec.output.uri:") and "outside_roots" in report["error"]
    assert store.snapshot("ns.c.1").collected == report
