"""The result store on a local folder and on an fsspec object store (memory://): a batch's part is published
once and the first delivery wins, parts read back in batch order, other epochs and expired jobs go."""

from __future__ import annotations

import threading

import pytest

from phashfleet.results import make_record
from phashfleet.state.result_store import ResultStore


@pytest.fixture
def store(any_result_store):
    return any_result_store


def _records(tag: str, n: int = 3) -> list[dict]:
    return [
        make_record(f"/d/{tag}{i}.jpg", algorithm="phash", hash_size=8, status="ok", hash=f"{i:016x}") for i in range(n)
    ]


def test_the_first_delivery_to_publish_a_part_wins_and_a_later_one_gets_its_records(store):
    first, second = _records("a"), _records("b")
    assert store.publish_part("ns.j.1", "e1", 4, first) == first
    assert store.publish_part("ns.j.1", "e1", 4, second) == first  # what the reader finds, and what gets counted
    assert store.read_part("ns.j.1", "e1", 4) == first
    assert store.part_ids("ns.j.1", "e1") == [4]


def test_racing_deliveries_publish_one_part_and_all_count_the_same_records(tmp_path):
    store = ResultStore(str(tmp_path))
    seen: list[list[dict]] = []
    start = threading.Barrier(8)

    def deliver(k: int) -> None:
        start.wait()
        seen.append(store.publish_part("ns.race.1", "e", 0, _records(f"w{k}-")))

    threads = [threading.Thread(target=deliver, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == 8 and all(s == seen[0] for s in seen)
    assert store.read_part("ns.race.1", "e", 0) == seen[0]
    leftovers = [p.name for p in (tmp_path / "jobs" / "ns.race.1" / "e" / "parts").iterdir()]
    assert leftovers == ["000000000.jsonl"], "no temporary file is left behind"


def test_records_stream_part_by_part_in_batch_order(store):
    for batch in (10, 2, 0):
        store.publish_part("ns.j.1", "e", batch, _records(f"b{batch}-", 2))
    assert [r["path"] for r in store.iter_records("ns.j.1", "e")] == [
        "/d/b0-0.jpg",
        "/d/b0-1.jpg",
        "/d/b2-0.jpg",
        "/d/b2-1.jpg",
        "/d/b10-0.jpg",
        "/d/b10-1.jpg",
    ]
    assert store.part_bytes("ns.j.1", "e") > 0
    assert list(store.iter_records("ns.j.1", "other")) == []


def test_other_epochs_go_and_expired_jobs_are_swept(store):
    store.publish_part("ns.old.1", "e1", 0, _records("x"))
    store.publish_part("ns.old.1", "e2", 0, _records("y"))
    store.delete_epochs("ns.old.1", keep="e2")
    assert store.epochs("ns.old.1") == ["e2"]
    store.write_expiry("ns.old.1", 60, now=1000.0)
    store.publish_part("ns.running.1", "e", 0, _records("z"))  # no expiry yet: a sweep never takes it
    assert store.sweep(now=1059.0) == []
    assert store.sweep(now=1060.0) == ["ns.old.1"]
    assert store.job_ids() == ["ns.running.1"]
    assert store.expires_at("ns.running.1") is None
