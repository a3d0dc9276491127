"""Job state in Redis: hand-out cursor, in-flight batches, leases, idempotent results and counts."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from importlib import resources
from typing import Any

import redis

from phashfleet.results import dumps
from phashfleet.state import keys
from phashfleet.state.store import JobSnapshot

COUNT_FIELDS = ("ok", "failed", "skipped", "cached")


def _lua(name: str) -> str:
    return resources.files("phashfleet.state").joinpath("lua", name).read_text()


class RedisJobStore:
    """All reads and writes of job state; multi-key changes go through the Lua scripts beside it."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._record = client.register_script(_lua("record.lua"))
        self._hand_out = client.register_script(_lua("hand_out.lua"))

    # --- job lifecycle -------------------------------------------------------------------------
    def create(self, job_id: str, settings: dict[str, Any], total: int) -> bool:
        """Create the job's state unless it exists; return True when it was created now."""
        meta = keys.job(job_id, "meta")
        created = self.client.hsetnx(meta, "settings", json.dumps(settings, sort_keys=True))
        if created:
            self.client.hset(meta, mapping={"total": total, "listed": 0, "next_batch": 0, "listing_done": 0})
            self.client.sadd(keys.jobs(), job_id)
        return bool(created)

    def snapshot(self, job_id: str) -> JobSnapshot:
        """Read meta, counts and the in-flight count in one round trip."""
        pipe = self.client.pipeline(transaction=False)
        pipe.hgetall(keys.job(job_id, "meta"))
        pipe.hmget(keys.job(job_id, "counts"), *COUNT_FIELDS)
        pipe.zcard(keys.job(job_id, "inflight"))
        meta, counts, inflight = pipe.execute()
        if not meta:
            return JobSnapshot(exists=False)
        ok, failed, skipped, cached = (int(c or 0) for c in counts)
        return JobSnapshot(
            exists=True,
            total=int(meta.get(b"total", 0)),
            listed=int(meta.get(b"listed", 0)),
            next_batch=int(meta.get(b"next_batch", 0)),
            listing_done=meta.get(b"listing_done") == b"1",
            ok=ok,
            failed=failed,
            skipped=skipped,
            cached=cached,
            inflight=inflight,
            settings=json.loads(meta[b"settings"]) if b"settings" in meta else None,
        )

    def delete(self, job_id: str) -> None:
        """Remove every key of a job (results included)."""
        doomed = [keys.job(job_id, part) for part in ("meta", "results", "counts", "failures", "inflight", "leases")]
        doomed += list(self.client.scan_iter(match=keys.batch_pattern(job_id), count=1000))
        self.client.delete(*doomed)
        self.client.srem(keys.jobs(), job_id)

    def expire(self, job_id: str, seconds: int) -> None:
        """Let a finished job's state expire after `seconds` (it no longer counts towards the backlog)."""
        pipe = self.client.pipeline(transaction=False)
        pipe.srem(keys.jobs(), job_id)
        for part in ("meta", "results", "counts", "failures", "inflight", "leases"):
            pipe.expire(keys.job(job_id, part), max(1, seconds))
        pipe.execute()

    # --- handing out ---------------------------------------------------------------------------
    def hand_out(self, job_id: str, batch_id: int, files: list[str], now: float, listing_done: bool) -> bool:
        """Record batch `batch_id` as handed out (idempotent: a repeated call is refused)."""
        return bool(
            self._hand_out(
                keys=[keys.job(job_id, "meta"), keys.job(job_id, "inflight"), keys.batch(job_id, batch_id)],
                args=[batch_id, now, json.dumps(files), len(files), int(listing_done)],
            )
        )

    def mark_listing_done(self, job_id: str) -> None:
        """The listing has nothing more to hand out."""
        self.client.hset(keys.job(job_id, "meta"), "listing_done", 1)

    def overdue(self, job_id: str, now: float, *, queue_grace: float) -> list[int]:
        """Batches whose worker lease ran out, or that waited unstarted longer than `queue_grace`."""
        expired = self.client.zrangebyscore(keys.job(job_id, "leases"), "-inf", now)
        started = set(self.client.zrange(keys.job(job_id, "leases"), 0, -1))
        stale = [
            b
            for b in self.client.zrangebyscore(keys.job(job_id, "inflight"), "-inf", now - queue_grace)
            if b not in started
        ]
        return sorted({int(b) for b in [*expired, *stale]})

    def rearm(self, job_id: str, batch_id: int, now: float) -> None:
        """A batch was sent again: restart its queue clock and drop its stale lease."""
        pipe = self.client.pipeline()
        pipe.zadd(keys.job(job_id, "inflight"), {str(batch_id): now}, xx=True)
        pipe.zrem(keys.job(job_id, "leases"), batch_id)
        pipe.execute()

    def batch_files(self, job_id: str, batch_id: int) -> list[str] | None:
        """The files of a handed-out batch, or None when it is done (or the job is gone)."""
        raw = self.client.get(keys.batch(job_id, batch_id))
        return json.loads(raw) if raw is not None else None

    # --- workers -------------------------------------------------------------------------------
    def start_batch(self, job_id: str, batch_id: int, lease_deadline: float) -> list[str] | None:
        """Take a lease on a batch and return its files; None means drop the message (done or gone)."""
        files = self.batch_files(job_id, batch_id)
        if files is None or self.client.zscore(keys.job(job_id, "inflight"), batch_id) is None:
            return None
        self.client.zadd(keys.job(job_id, "leases"), {str(batch_id): lease_deadline})
        return files

    def record(
        self,
        job_id: str,
        batch_id: int,
        records: Iterable[dict[str, Any]],
        *,
        finish: bool,
        lease_deadline: float = 0.0,
    ) -> int:
        """Write records set-if-absent and bump counts for new ones; -1 when the job has no state."""
        args: list[Any] = [batch_id, int(finish), lease_deadline, keys.MAX_FAILURES]
        for record in records:
            args += [record["path"], record["status"], int(bool(record.get("cached"))), dumps(record)]
        return int(
            self._record(
                keys=[keys.job(job_id, p) for p in ("meta", "results", "counts", "failures", "inflight", "leases")]
                + [keys.batch(job_id, batch_id)],
                args=args,
            )
        )

    # --- results -------------------------------------------------------------------------------
    def iter_results(self, job_id: str) -> Iterator[dict[str, Any]]:
        """Every record of a job, streamed with HSCAN (never all in memory)."""
        for _path, raw in self.client.hscan_iter(keys.job(job_id, "results"), count=1000):
            yield json.loads(raw)

    def failures(self, job_id: str) -> list[dict[str, Any]]:
        """The first (at most keys.MAX_FAILURES) failed records."""
        return [json.loads(r) for r in self.client.lrange(keys.job(job_id, "failures"), 0, keys.MAX_FAILURES - 1)]

    def job_ids(self) -> list[str]:
        """Jobs with state that have not ended (an expiring one has left the set)."""
        return sorted(raw.decode() if isinstance(raw, bytes) else raw for raw in self.client.smembers(keys.jobs()))

    def queue_length(self, queue: str | None = None) -> int:
        """Messages waiting in a Dramatiq queue, this process's by default (not counting ones a worker holds)."""
        return int(self.client.llen(keys.dramatiq_queue(queue)))

    def inflight_counts(self, job_ids: list[str]) -> list[int]:
        """Batches in flight now for each job, in one round trip (0 for a job with no state)."""
        pipe = self.client.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.zcard(keys.job(job_id, "inflight"))
        return [int(n) for n in pipe.execute()]
