"""What a job store is: the operations the Redis and in-memory stores both offer, and their snapshot.

tests/integration/test_store_contract.py pins the semantics for both; dispatch, the engine and
`phashfleet run` are written against `JobStore`, never against one store.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class JobSnapshot:
    """What the store knows about one job at one moment."""

    exists: bool
    total: int = 0
    listed: int = 0
    next_batch: int = 0
    listing_done: bool = False
    ok: int = 0
    failed: int = 0
    skipped: int = 0
    #: Of the ok ones, records served from the content cache (the file was not hashed again).
    cached: int = 0
    inflight: int = 0
    settings: dict[str, Any] | None = None
    #: The job state's own id: its parts in the result store live under it (a restart from scratch gets a new one).
    epoch: str = ""
    #: When the collector was last asked to finish the job (None: not yet), and its lease while it works.
    collect_sent: float | None = None
    collect_lease: float | None = None
    #: What the collector reported (status fields, or {"error": ...}); None while it has not.
    collected: dict[str, Any] | None = None
    #: Every shard of the source has been listed (by workers: see job.lister); `total` is known from then on.
    source_listed: bool = False

    @property
    def done_files(self) -> int:
        """Files with a record."""
        return self.ok + self.failed + self.skipped

    @property
    def finished(self) -> bool:
        """Every batch has been handed out and come back."""
        return self.exists and self.listing_done and self.inflight == 0


@dataclass(frozen=True)
class ListingState:
    """Where the listing of a job's source stands: its shards, what each lister reported, their holds."""

    #: Shards the source was cut into (None until shard 0, which decides it, is listed).
    shards: int | None = None
    #: The token of the winning shard-0 listing (its split of the source is the one the other shards read).
    root: str = ""
    #: shard -> (files, token of the listing attempt whose chunks count), first report wins.
    listed: dict[int, tuple[int, str]] = field(default_factory=dict)
    #: shard -> when its list message was last sent / until when a lister holds it.
    sent: dict[int, float] = field(default_factory=dict)
    leases: dict[int, float] = field(default_factory=dict)
    #: shard -> files its current lister has listed so far (progress only).
    so_far: dict[int, int] = field(default_factory=dict)
    #: shard -> {"reason", "message", "transient"} of a lister that could not list it.
    errors: dict[int, dict[str, Any]] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        """Every shard is listed."""
        return self.shards is not None and len(self.listed) >= self.shards

    @property
    def files_so_far(self) -> int:
        """Files listed so far, all shards (for the status while listing)."""
        done = sum(files for files, _ in self.listed.values())
        return done + sum(n for shard, n in self.so_far.items() if shard not in self.listed)

    def due(self, now: float, *, queue_grace: float) -> list[int]:
        """Shards whose list message must be sent (again): never sent, hold run out, or unstarted too long."""
        known = range(self.shards) if self.shards is not None else range(1)
        due = []
        for shard in known:
            if shard in self.listed or shard in self.errors:
                continue
            lease, sent = self.leases.get(shard), self.sent.get(shard)
            if (lease is not None and lease <= now) or (lease is None and (sent is None or sent <= now - queue_grace)):
                due.append(shard)
        return due


@dataclass(frozen=True)
class BatchTally:
    """What a finished batch adds to its job: counts, and its failed records (for status.failures)."""

    ok: int = 0
    failed: int = 0
    skipped: int = 0
    cached: int = 0
    failures: tuple[dict[str, Any], ...] = ()

    @classmethod
    def of(cls, records: Iterable[dict[str, Any]]) -> BatchTally:
        """Tally a batch's records (each file once: a batch lists a file once)."""
        counts = {"ok": 0, "failed": 0, "skipped": 0}
        cached, failures = 0, []
        for record in records:
            counts[record["status"]] += 1
            cached += int(bool(record.get("cached")))
            if record["status"] == "failed":
                failures.append(record)
        return cls(**counts, cached=cached, failures=tuple(failures))

    @property
    def files(self) -> int:
        """Files of the batch."""
        return self.ok + self.failed + self.skipped


class JobStore(Protocol):
    """A job's state: cursor, batches in flight, leases, each batch counted once, the collector's hold and report.

    Time is the caller's (`now`, `lease_deadline`: seconds on one clock). A batch is overdue when its
    lease deadline is at or before `now`, or, never started, it was handed out (or re-armed) at or
    before `now - queue_grace`.
    """

    def create(self, job_id: str, settings: dict[str, Any], total: int) -> bool:
        """Create the job's state unless it exists; True when it was created now."""
        ...

    def snapshot(self, job_id: str) -> JobSnapshot:
        """Counts, cursor and batches in flight now (`exists=False` for a job with no state)."""
        ...

    def delete(self, job_id: str) -> None:
        """Forget every part of a job, results included."""
        ...

    def hand_out(
        self, job_id: str, batch_id: int, files: list[str], now: float, listing_done: bool, *, count: int | None = None
    ) -> bool:
        """Record batch `batch_id` (the next one) as handed out at `now`; anything else is refused (False).

        `files` are the batch's entries (segments of the listing, see job.lister), `count` the files they
        name (default: one per entry).
        """
        ...

    def mark_listing_done(self, job_id: str) -> None:
        """The listing has nothing more to hand out."""
        ...

    def overdue(self, job_id: str, now: float, *, queue_grace: float) -> list[int]:
        """Batches in flight whose lease ran out, or that waited unstarted `queue_grace` s or longer; sorted."""
        ...

    def rearm(self, job_id: str, batch_id: int, now: float) -> None:
        """A batch was sent again: its queue clock restarts at `now` and its lease goes."""
        ...

    def start_batch(self, job_id: str, batch_id: int, lease_deadline: float) -> list[str] | None:
        """Lease a batch in flight until `lease_deadline` and return its files; None when done or gone."""
        ...

    def renew(self, job_id: str, batch_id: int, lease_deadline: float) -> bool:
        """Extend a worker's lease on a batch in flight; False when the batch is done (or the job gone)."""
        ...

    def finish_batch(self, job_id: str, batch_id: int, tally: BatchTally) -> int:
        """Count a batch once and close it: 1 when counted now, 0 when it was not in flight, -1 when the job
        has no state. Its records are in the result store already (see job.complete)."""
        ...

    def collect_sent(self, job_id: str, now: float) -> None:
        """The collector was asked (again) at `now` to finish the job; any lease it held is dropped."""
        ...

    def start_collect(self, job_id: str, lease_deadline: float) -> bool:
        """The collector holds the job until `lease_deadline`; False when it was collected (or is gone)."""
        ...

    def collected(self, job_id: str, summary: dict[str, Any]) -> bool:
        """Keep the collector's report (the first one wins); False when the job has no state."""
        ...

    def failures(self, job_id: str) -> list[dict[str, Any]]:
        """The first failed records (at most keys.MAX_FAILURES), in the order they came."""
        ...

    def listing(self, job_id: str) -> ListingState:
        """Where the listing of the job's source stands (an empty state for a job without one)."""
        ...

    def listing_sent(self, job_id: str, shard: int, now: float) -> None:
        """Shard `shard`'s list message was sent (again) at `now`; its lister's hold and error go."""
        ...

    def start_listing(self, job_id: str, shard: int, lease_deadline: float, so_far: int = 0) -> bool:
        """A lister holds the shard until `lease_deadline` (renewing it, with its progress); False when the
        shard is listed or the job has no state."""
        ...

    def finish_listing(self, job_id: str, shard: int, files: int, token: str, *, shards: int | None = None) -> int:
        """Keep a lister's report (the first wins; shard 0 also says how many shards there are); when every
        shard is reported the job's total is their sum. 1 kept, 0 reported before, -1 no state."""
        ...

    def listing_failed(self, job_id: str, shard: int, error: dict[str, Any]) -> None:
        """A lister could not list the shard: keep why, drop its hold (the operator decides what follows)."""
        ...


class SharedJobStore(JobStore, Protocol):
    """A store other processes share through a broker (Redis): what the operator needs besides."""

    def expire(self, job_id: str, seconds: int) -> None:
        """Let a finished job's state go after `seconds`; it stops counting as a job at once."""
        ...

    def job_ids(self) -> list[str]:
        """Jobs with state that have not ended (expire takes a job out at once)."""
        ...

    def queue_length(self, queue: str | None = None) -> int:
        """Messages waiting in a broker queue (this process's by default), not counting ones a worker holds."""
        ...

    def inflight_counts(self, job_ids: list[str]) -> list[int]:
        """Batches in flight now for each job, in one round trip (0 for a job with no state)."""
        ...
