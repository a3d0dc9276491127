"""Both job stores keep the first keys.MAX_FAILURES failed records, the CRD's bound on status.failures."""

from __future__ import annotations

import pytest

from phashfleet.job.spec import schema_of
from phashfleet.results import make_record
from phashfleet.state import keys
from phashfleet.state.memory_store import MemoryJobStore
from phashfleet.state.redis_store import RedisJobStore
from phashfleet.state.store import BatchTally
from phashfleet.worker.broker import redis_client


@pytest.fixture(params=["redis", "memory"])
def store(request):
    if request.param == "memory":
        return MemoryJobStore()
    env = request.getfixturevalue("redis_env")
    return RedisJobStore(redis_client(env["PHASHFLEET_REDIS_URL"], env["PHASHFLEET_REDIS_PASSWORD"]))


def test_the_cap_is_the_crd_bound_of_status_failures():
    assert schema_of("status.failures")["maxItems"] == keys.MAX_FAILURES
    assert f"first {keys.MAX_FAILURES} failures" in schema_of("status.failures")["description"]


def test_a_store_keeps_the_first_max_failures_failed_records_in_order(store, monkeypatch):
    cap = keys.MAX_FAILURES + 3  # a cap written by hand into the Lua script or a store keeps fewer
    monkeypatch.setattr(keys, "MAX_FAILURES", cap)
    store.create("ns.cap.1", {"batch_size": 64}, 30)
    records = [
        make_record(f"/d/f{i:02d}.jpg", algorithm="phash", hash_size=8, status="failed", reason=f"corrupt: {i}")
        for i in range(cap + 5)
    ]
    store.hand_out("ns.cap.1", 0, [r["path"] for r in records[:3]], 0.0, False)
    store.hand_out("ns.cap.1", 1, [r["path"] for r in records[3:]], 0.0, True)
    assert store.finish_batch("ns.cap.1", 0, BatchTally.of(records[:3])) == 1
    assert store.finish_batch("ns.cap.1", 1, BatchTally.of(records[3:])) == 1  # fills the list up to the cap
    assert [f["path"] for f in store.failures("ns.cap.1")] == [r["path"] for r in records[:cap]]
    assert store.snapshot("ns.cap.1").failed == cap + 5
