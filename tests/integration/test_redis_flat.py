"""A job's state in real Redis is flat in the job's size: once its batches are back, 200 files and 20,000
files take the same memory (records live in the result store; Redis keeps counts and the first failures)."""

from __future__ import annotations

import uuid

from phashfleet.results import make_record
from phashfleet.state.redis_store import RedisJobStore
from phashfleet.state.store import BatchTally
from phashfleet.worker.broker import redis_client

BATCH = 64


def _job_bytes(store: RedisJobStore, files: int) -> int:
    """Bytes of every key of a job of `files` files whose batches (a tenth failing) are all back."""
    job = f"flat.{uuid.uuid4().hex[:12]}"
    store.create(job, {"algorithm": "phash", "hash_size": 8, "batch_size": BATCH}, files)
    batches = range(0, files, BATCH)
    for batch_id, start in enumerate(batches):
        paths = [f"/archive/{i:08d}.jpg" for i in range(start, min(files, start + BATCH))]
        store.hand_out(job, batch_id, paths, 0.0, batch_id == len(batches) - 1)
        records = [
            make_record(p, algorithm="phash", hash_size=8, status="failed", reason="decode_error: x")
            if i % 10 == 0
            else make_record(p, algorithm="phash", hash_size=8, status="ok", hash="f" * 16)
            for i, p in enumerate(paths, start)
        ]
        assert store.finish_batch(job, batch_id, BatchTally.of(records)) == 1
    snap = store.snapshot(job)
    assert snap.finished and snap.done_files == files
    found = list(store.client.scan_iter(match=f"*{job}*", count=1000))
    return sum(int(store.client.memory_usage(k, samples=0) or 0) for k in found)


def test_a_finished_jobs_redis_memory_does_not_grow_with_its_files(redis_env) -> None:
    store = RedisJobStore(redis_client(redis_env["PHASHFLEET_REDIS_URL"], redis_env["PHASHFLEET_REDIS_PASSWORD"]))
    small, large = _job_bytes(store, 200), _job_bytes(store, 20_000)
    # ~272 bytes a record when records lived in Redis: 5.4 MB more for the large job. Now only digits of counts differ.
    assert abs(large - small) < 256, (small, large)
    assert large < 16 * 1024, large
