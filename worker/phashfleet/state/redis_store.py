"""Job state in Redis: hand-out cursor, in-flight batches, leases, per-batch counts and the collector's report."""

from __future__ import annotations

import json
import uuid
from importlib import resources
from typing import Any

import redis

from phashfleet.results import dumps
from phashfleet.state import keys
from phashfleet.state.store import BatchTally, JobSnapshot, ListingState

COUNT_FIELDS = ("ok", "failed", "skipped", "cached")
#: Every key of a job but its batches' file lists.
JOB_PARTS = ("meta", "counts", "failures", "inflight", "leases", "listing")
#: The keys finish_batch.lua changes, in its KEYS order (the batch's own key follows).
BATCH_PARTS = JOB_PARTS[:5]


def _float(raw: bytes | None) -> float | None:
    return float(raw) if raw is not None else None


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


def _lua(name: str) -> str:
    return resources.files("phashfleet.state").joinpath("lua", name).read_text()


class RedisJobStore:
    """All reads and writes of job state; multi-key changes go through the Lua scripts beside it."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._finish_batch = client.register_script(_lua("finish_batch.lua"))
        self._hand_out = client.register_script(_lua("hand_out.lua"))
        self._renew = client.register_script(_lua("renew.lua"))
        self._finish_listing = client.register_script(_lua("finish_listing.lua"))

    # --- job lifecycle -------------------------------------------------------------------------
    def create(self, job_id: str, settings: dict[str, Any], total: int) -> bool:
        """Create the job's state unless it exists; return True when it was created now."""
        meta = keys.job(job_id, "meta")
        created = self.client.hsetnx(meta, "settings", json.dumps(settings, sort_keys=True))
        if created:
            self.client.hset(
                meta,
                mapping={
                    "total": total,
                    "listed": 0,
                    "next_batch": 0,
                    "listing_done": 0,
                    "epoch": uuid.uuid4().hex[:12],
                },
            )
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
            epoch=meta.get(b"epoch", b"").decode(),
            collect_sent=_float(meta.get(b"collect_sent")),
            collect_lease=_float(meta.get(b"collect_lease")),
            collected=json.loads(meta[b"collected"]) if b"collected" in meta else None,
            source_listed=meta.get(b"source_listed") == b"1",
        )

    def delete(self, job_id: str) -> None:
        """Remove every key of a job."""
        doomed = [keys.job(job_id, part) for part in JOB_PARTS]
        doomed += list(self.client.scan_iter(match=keys.batch_pattern(job_id), count=1000))
        self.client.delete(*doomed)
        self.client.srem(keys.jobs(), job_id)

    def expire(self, job_id: str, seconds: int) -> None:
        """Let a finished job's state expire after `seconds` (it no longer counts towards the backlog)."""
        pipe = self.client.pipeline(transaction=False)
        pipe.srem(keys.jobs(), job_id)
        for part in JOB_PARTS:
            pipe.expire(keys.job(job_id, part), max(1, seconds))
        pipe.execute()

    # --- handing out ---------------------------------------------------------------------------
    def hand_out(
        self, job_id: str, batch_id: int, files: list[str], now: float, listing_done: bool, *, count: int | None = None
    ) -> bool:
        """Record batch `batch_id` as handed out (idempotent: a repeated call is refused)."""
        return bool(
            self._hand_out(
                keys=[keys.job(job_id, "meta"), keys.job(job_id, "inflight"), keys.batch(job_id, batch_id)],
                args=[batch_id, now, json.dumps(files), len(files) if count is None else count, int(listing_done)],
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
        if files is None or not self.renew(job_id, batch_id, lease_deadline):
            return None
        return files

    def renew(self, job_id: str, batch_id: int, lease_deadline: float) -> bool:
        """Extend the lease on a batch while it is in flight (atomically: a finished batch gets none)."""
        return bool(
            self._renew(
                keys=[keys.job(job_id, "inflight"), keys.job(job_id, "leases")], args=[batch_id, lease_deadline]
            )
        )

    def finish_batch(self, job_id: str, batch_id: int, tally: BatchTally) -> int:
        """Count a batch once and close it, in one Lua call; 1 counted, 0 not in flight, -1 no state."""
        args: list[Any] = [batch_id, tally.ok, tally.failed, tally.skipped, tally.cached, keys.MAX_FAILURES]
        args += [dumps(r) for r in tally.failures[: keys.MAX_FAILURES]]
        return int(
            self._finish_batch(
                keys=[keys.job(job_id, p) for p in BATCH_PARTS] + [keys.batch(job_id, batch_id)],
                args=args,
            )
        )

    # --- the collector -------------------------------------------------------------------------
    def collect_sent(self, job_id: str, now: float) -> None:
        """The collector was asked at `now`; any lease it held is dropped."""
        pipe = self.client.pipeline()
        pipe.hset(keys.job(job_id, "meta"), "collect_sent", now)
        pipe.hdel(keys.job(job_id, "meta"), "collect_lease")
        pipe.execute()

    def start_collect(self, job_id: str, lease_deadline: float) -> bool:
        """Hold the job for the collector until `lease_deadline`; False when collected or gone."""
        meta = keys.job(job_id, "meta")
        exists, collected = self.client.hmget(meta, "settings", "collected")
        if exists is None or collected is not None:
            return False
        self.client.hset(meta, "collect_lease", lease_deadline)
        return True

    def collected(self, job_id: str, summary: dict[str, Any]) -> bool:
        """Keep the collector's first report; False when the job has no state."""
        meta = keys.job(job_id, "meta")
        if not self.client.exists(meta):
            return False
        self.client.hsetnx(meta, "collected", json.dumps(summary, sort_keys=True))
        return True

    # --- status --------------------------------------------------------------------------------
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

    # --- listing the source (workers list it: job.lister) ----------------------------------------
    def listing(self, job_id: str) -> ListingState:
        """Where the listing of the job's source stands, in one read (a few fields per shard)."""
        fields = self.client.hgetall(keys.job(job_id, "listing"))
        raw = {_text(k): _text(v) for k, v in fields.items()}
        by: dict[str, dict[int, str]] = {}
        for name, value in raw.items():
            kind, _, shard = name.partition(":")
            if shard:
                by.setdefault(kind, {})[int(shard)] = value
        listed = {s: (int(v.partition(":")[0]), v.partition(":")[2]) for s, v in by.get("done", {}).items()}
        return ListingState(
            shards=int(raw["shards"]) if "shards" in raw else None,
            root=raw.get("root", ""),
            listed=listed,
            sent={s: float(v) for s, v in by.get("sent", {}).items()},
            leases={s: float(v) for s, v in by.get("lease", {}).items()},
            so_far={s: int(v) for s, v in by.get("so_far", {}).items()},
            errors={s: json.loads(v) for s, v in by.get("error", {}).items()},
        )

    def listing_sent(self, job_id: str, shard: int, now: float) -> None:
        """The shard's list message was sent at `now`; its lister's hold and error go."""
        key = keys.job(job_id, "listing")
        pipe = self.client.pipeline()
        pipe.hset(key, f"sent:{shard}", now)
        pipe.hdel(key, f"lease:{shard}", f"error:{shard}")
        pipe.execute()

    def start_listing(self, job_id: str, shard: int, lease_deadline: float, so_far: int = 0) -> bool:
        """A lister holds the shard until `lease_deadline`; False when listed or the job has no state."""
        key = keys.job(job_id, "listing")
        pipe = self.client.pipeline(transaction=False)
        pipe.exists(keys.job(job_id, "meta"))
        pipe.hexists(key, f"done:{shard}")
        exists, done = pipe.execute()
        if not exists or done:
            return False
        self.client.hset(key, mapping={f"lease:{shard}": lease_deadline, f"so_far:{shard}": so_far})
        return True

    def finish_listing(self, job_id: str, shard: int, files: int, token: str, *, shards: int | None = None) -> int:
        """Keep the first report of a shard (in one Lua call); the job's total once every shard is in."""
        return int(
            self._finish_listing(
                keys=[keys.job(job_id, "meta"), keys.job(job_id, "listing")],
                args=[shard, files, token, "" if shards is None else shards],
            )
        )

    def listing_failed(self, job_id: str, shard: int, error: dict[str, Any]) -> None:
        """A lister could not list the shard: keep why, drop its hold."""
        key = keys.job(job_id, "listing")
        if self.client.exists(keys.job(job_id, "meta")):
            pipe = self.client.pipeline()
            pipe.hset(key, f"error:{shard}", json.dumps(error, sort_keys=True))
            pipe.hdel(key, f"lease:{shard}")
            pipe.execute()
