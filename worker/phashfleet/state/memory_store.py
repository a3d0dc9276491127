"""Job state in this process's memory, with the same semantics as the Redis store (for `phashfleet run`)."""

from __future__ import annotations

import uuid
from typing import Any

from phashfleet.state import keys
from phashfleet.state.store import BatchTally, JobSnapshot, ListingState


class MemoryJobStore:
    """The RedisJobStore's interface on dicts: a batch counts once, counts are exact."""

    def __init__(self) -> None:
        self.jobs: dict[str, dict[str, Any]] = {}

    def create(self, job_id: str, settings: dict[str, Any], total: int) -> bool:
        """Create the job's state unless it exists."""
        if job_id in self.jobs:
            return False
        self.jobs[job_id] = {
            "settings": settings,
            "total": total,
            "listed": 0,
            "next_batch": 0,
            "listing_done": False,
            "epoch": uuid.uuid4().hex[:12],
            "collect_sent": None,
            "collect_lease": None,
            "collected": None,
            "counts": {"ok": 0, "failed": 0, "skipped": 0, "cached": 0},
            "failures": [],
            "inflight": {},
            "leases": {},
            "batches": {},
            "source_listed": False,
            "listing": {"shards": None, "root": "", "listed": {}, "sent": {}, "leases": {}, "so_far": {}, "errors": {}},
        }
        return True

    def snapshot(self, job_id: str) -> JobSnapshot:
        """What is known about a job now."""
        job = self.jobs.get(job_id)
        if job is None:
            return JobSnapshot(exists=False)
        return JobSnapshot(
            exists=True,
            total=job["total"],
            listed=job["listed"],
            next_batch=job["next_batch"],
            listing_done=job["listing_done"],
            inflight=len(job["inflight"]),
            settings=job["settings"],
            epoch=job["epoch"],
            collect_sent=job["collect_sent"],
            collect_lease=job["collect_lease"],
            collected=job["collected"],
            source_listed=job["source_listed"],
            **job["counts"],
        )

    def delete(self, job_id: str) -> None:
        """Forget a job."""
        self.jobs.pop(job_id, None)

    def hand_out(
        self, job_id: str, batch_id: int, files: list[str], now: float, listing_done: bool, *, count: int | None = None
    ) -> bool:
        """Record a batch as handed out; a repeated batch id is refused."""
        job = self.jobs.get(job_id)
        if job is None or batch_id != job["next_batch"]:
            return False
        job["batches"][batch_id] = list(files)
        job["inflight"][batch_id] = now
        job["listed"] += len(files) if count is None else count
        job["next_batch"] += 1
        job["listing_done"] = job["listing_done"] or listing_done
        return True

    def mark_listing_done(self, job_id: str) -> None:
        """The listing has nothing more to hand out."""
        self.jobs[job_id]["listing_done"] = True

    def overdue(self, job_id: str, now: float, *, queue_grace: float) -> list[int]:
        """Batches whose lease ran out or that waited unstarted longer than `queue_grace`."""
        job = self.jobs[job_id]
        # Both clocks inclusive, as Redis's ZRANGEBYSCORE -inf now is: a lease ends at its deadline, so at
        # now=inf every batch is out, as drop_inflight needs, `phashfleet run`'s endless leases included.
        return sorted(
            b
            for b, at in job["inflight"].items()
            if (b in job["leases"] and job["leases"][b] <= now) or (b not in job["leases"] and at <= now - queue_grace)
        )

    def rearm(self, job_id: str, batch_id: int, now: float) -> None:
        """A batch was sent again."""
        job = self.jobs[job_id]
        if batch_id in job["inflight"]:
            job["inflight"][batch_id] = now
        job["leases"].pop(batch_id, None)

    def start_batch(self, job_id: str, batch_id: int, lease_deadline: float) -> list[str] | None:
        """Take a lease and return the files, or None when the batch is done or the job gone."""
        job = self.jobs.get(job_id)
        if job is None or not self.renew(job_id, batch_id, lease_deadline):
            return None
        files: list[str] = job["batches"][batch_id]
        return files

    def renew(self, job_id: str, batch_id: int, lease_deadline: float) -> bool:
        """Extend the lease on a batch in flight."""
        job = self.jobs.get(job_id)
        if job is None or batch_id not in job["inflight"]:
            return False
        job["leases"][batch_id] = lease_deadline
        return True

    def finish_batch(self, job_id: str, batch_id: int, tally: BatchTally) -> int:
        """Count a batch once and close it; 1 counted, 0 not in flight, -1 no state."""
        job = self.jobs.get(job_id)
        if job is None:
            return -1
        if batch_id not in job["inflight"]:
            return 0
        del job["inflight"][batch_id]
        job["leases"].pop(batch_id, None)
        job["batches"].pop(batch_id, None)
        for name in ("ok", "failed", "skipped", "cached"):
            job["counts"][name] += getattr(tally, name)
        room = keys.MAX_FAILURES - len(job["failures"])
        job["failures"].extend(dict(r) for r in tally.failures[: max(0, room)])
        return 1

    def collect_sent(self, job_id: str, now: float) -> None:
        """The collector was asked at `now`."""
        job = self.jobs[job_id]
        job["collect_sent"], job["collect_lease"] = now, None

    def start_collect(self, job_id: str, lease_deadline: float) -> bool:
        """Hold the job for the collector; False when collected or gone."""
        job = self.jobs.get(job_id)
        if job is None or job["collected"] is not None:
            return False
        job["collect_lease"] = lease_deadline
        return True

    def collected(self, job_id: str, summary: dict[str, Any]) -> bool:
        """Keep the collector's first report."""
        job = self.jobs.get(job_id)
        if job is None:
            return False
        if job["collected"] is None:
            job["collected"] = dict(summary)
        return True

    def failures(self, job_id: str) -> list[dict[str, Any]]:
        """The first (at most keys.MAX_FAILURES) failed records."""
        return list(self.jobs[job_id]["failures"])

    def listing(self, job_id: str) -> ListingState:
        """Where the listing of the job's source stands."""
        job = self.jobs.get(job_id)
        if job is None:
            return ListingState()
        state = job["listing"]
        return ListingState(
            shards=state["shards"],
            root=state["root"],
            **{name: dict(state[name]) for name in ("listed", "sent", "leases", "so_far", "errors")},
        )

    def listing_sent(self, job_id: str, shard: int, now: float) -> None:
        """The shard's list message was sent at `now`."""
        state = self.jobs[job_id]["listing"]
        state["sent"][shard] = now
        state["leases"].pop(shard, None)
        state["errors"].pop(shard, None)

    def start_listing(self, job_id: str, shard: int, lease_deadline: float, so_far: int = 0) -> bool:
        """A lister holds the shard until `lease_deadline`; False when listed or gone."""
        job = self.jobs.get(job_id)
        if job is None or shard in job["listing"]["listed"]:
            return False
        job["listing"]["leases"][shard] = lease_deadline
        job["listing"]["so_far"][shard] = so_far
        return True

    def finish_listing(self, job_id: str, shard: int, files: int, token: str, *, shards: int | None = None) -> int:
        """Keep the first report of a shard; the total once every shard is in."""
        job = self.jobs.get(job_id)
        if job is None:
            return -1
        state = job["listing"]
        if shard in state["listed"]:
            return 0
        state["listed"][shard] = (files, token)
        state["leases"].pop(shard, None)
        if shards is not None:
            state["shards"], state["root"] = shards, token
        if state["shards"] is not None and len(state["listed"]) >= state["shards"]:
            job["total"] = sum(n for n, _ in state["listed"].values())
            job["source_listed"] = True
        return 1

    def listing_failed(self, job_id: str, shard: int, error: dict[str, Any]) -> None:
        """A lister could not list the shard."""
        job = self.jobs.get(job_id)
        if job is not None:
            job["listing"]["errors"][shard] = dict(error)
            job["listing"]["leases"].pop(shard, None)
