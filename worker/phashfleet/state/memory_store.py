"""Job state in this process's memory, with the same semantics as the Redis store (for `phashfleet run`)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from phashfleet.state import keys
from phashfleet.state.store import JobSnapshot


class MemoryJobStore:
    """The RedisJobStore's interface on dicts: records land once, counts are exact."""

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
            "results": {},
            "counts": {"ok": 0, "failed": 0, "skipped": 0, "cached": 0},
            "failures": [],
            "inflight": {},
            "leases": {},
            "batches": {},
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
            **job["counts"],
        )

    def delete(self, job_id: str) -> None:
        """Forget a job."""
        self.jobs.pop(job_id, None)

    def hand_out(self, job_id: str, batch_id: int, files: list[str], now: float, listing_done: bool) -> bool:
        """Record a batch as handed out; a repeated batch id is refused."""
        job = self.jobs.get(job_id)
        if job is None or batch_id != job["next_batch"]:
            return False
        job["batches"][batch_id] = list(files)
        job["inflight"][batch_id] = now
        job["listed"] += len(files)
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
        if job is None or batch_id not in job["inflight"]:
            return None
        job["leases"][batch_id] = lease_deadline
        files: list[str] = job["batches"][batch_id]
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
        """Write records set-if-absent; -1 when the job is gone."""
        job = self.jobs.get(job_id)
        if job is None:
            return -1
        new = 0
        for record in records:
            if record["path"] not in job["results"]:
                job["results"][record["path"]] = json.dumps(record)
                job["counts"][record["status"]] += 1
                job["counts"]["cached"] += int(bool(record.get("cached")))
                new += 1
                if record["status"] == "failed" and len(job["failures"]) < keys.MAX_FAILURES:
                    job["failures"].append(record)
        if finish:
            job["inflight"].pop(batch_id, None)
            job["leases"].pop(batch_id, None)
            job["batches"].pop(batch_id, None)
        elif batch_id in job["inflight"]:
            job["leases"][batch_id] = lease_deadline
        return new

    def iter_results(self, job_id: str) -> Iterator[dict[str, Any]]:
        """Every record of a job."""
        for raw in self.jobs[job_id]["results"].values():
            yield json.loads(raw)

    def failures(self, job_id: str) -> list[dict[str, Any]]:
        """The first (at most keys.MAX_FAILURES) failed records."""
        return list(self.jobs[job_id]["failures"])
