"""RedisJobStore.inflight_counts: every job's batches in flight in one round trip, as each snapshot counts them."""

from __future__ import annotations

import uuid

from phashfleet.state.redis_store import RedisJobStore
from phashfleet.state.store import BatchTally
from phashfleet.worker.broker import redis_client


def test_inflight_counts_match_the_snapshots(redis_env: dict[str, str]) -> None:
    store = RedisJobStore(redis_client(redis_env["PHASHFLEET_REDIS_URL"], redis_env["PHASHFLEET_REDIS_PASSWORD"]))
    jobs = [f"counts.{uuid.uuid4().hex[:12]}" for _ in range(3)]
    for n, job in enumerate(jobs):
        store.create(job, {"algorithm": "phash", "hash_size": 8, "batch_size": 1}, 10)
        for batch in range(n):
            assert store.hand_out(job, batch, [f"/f{batch}"], 0.0, False)
    store.finish_batch(jobs[2], 0, BatchTally())  # one of its two batches is back
    assert store.inflight_counts([*jobs, "counts.none"]) == [0, 1, 1, 0]
    assert store.inflight_counts(jobs) == [store.snapshot(j).inflight for j in jobs]
    assert store.inflight_counts([]) == []
