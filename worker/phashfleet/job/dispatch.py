"""Handing out a job's batches through a bounded window, and handing overdue ones out again.

The same functions drive the operator (Dramatiq messages on Redis) and `phashfleet run`. A batch is a
range of listing positions, handed out as segments of the listing's chunks (job.lister): the file list
itself lives in the result store, never in the dispatcher's memory or in Redis.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from phashfleet.job.lister import ListingMap
from phashfleet.job.spec import JobSpec
from phashfleet.state.store import BatchTally, JobSnapshot, JobStore

#: Seconds a worker's lease on a batch lasts past the per-file timeout; renewed after every file.
LEASE_MARGIN = 15.0
#: Seconds an unstarted batch may wait in the queue before it is sent again (the queue may have lost it).
QUEUE_GRACE = 120.0
#: ... and when the queue is empty, so the batch is not waiting in it: a worker holds it as its next
#: batch (it takes a lease when it starts it), or the message was lost (Redis restarted under it, say).
#: A batch held longer than this is sent again; the first delivery to publish its part is the one counted.
EMPTY_QUEUE_GRACE = 10.0

#: The last batches of a job shrink to no less than batchSize / this (see `tail_batch_size`).
TAIL_MIN_FRACTION = 4
#: Batches of one job in flight per worker: the one it hashes, the next it holds, one waiting in the queue.
IN_FLIGHT_PER_WORKER = 3

Send = Callable[[str, int], None]


def job_window(workers: int, minimum: int = 0) -> int:
    """How many batches one job may have in flight: enough to keep every worker busy, at least `minimum`."""
    return max(minimum, 1, IN_FLIGHT_PER_WORKER * workers)


def lease_seconds(timeout_seconds: float) -> float:
    """How long a worker's lease on a batch lasts: longer than one file may take."""
    return timeout_seconds + LEASE_MARGIN


def queue_grace_for(queue_length: int) -> float:
    """How long an unstarted batch may wait before it is sent again, given the broker queue's length."""
    return EMPTY_QUEUE_GRACE if queue_length == 0 else QUEUE_GRACE


@dataclass
class TickResult:
    """What one dispatch tick did for a job."""

    handed_out: int = 0
    resent: list[int] = field(default_factory=list)


def tail_batch_size(batch_size: int, remaining: int, workers: int) -> int:
    """Files for the next batch: batchSize, shrinking near the end of a job so the fleet finishes together.

    Once fewer than IN_FLIGHT_PER_WORKER full batches per worker remain, the rest is cut finer (guided
    self-scheduling), never below batchSize / TAIL_MIN_FRACTION: otherwise one worker hashes a full last
    batch while the others wait.
    """
    spread = math.ceil(remaining / max(1, IN_FLIGHT_PER_WORKER * workers))
    return max(1, min(batch_size, max(spread, batch_size // TAIL_MIN_FRACTION)))


def dispatch_tick(
    store: JobStore,
    job_id: str,
    spec: JobSpec,
    listing: ListingMap,
    send: Send,
    *,
    now: float,
    room: int,
    window: int,
    queue_grace: float = QUEUE_GRACE,
    workers: int = 0,
) -> TickResult:
    """Send overdue batches again, then hand out new batches while the job's window and `room` allow.

    `room` is how many new messages the global dispatcher grants this job now (priority decides);
    `window` caps the job's batches in flight at once. Given the fleet's `workers`, the job's last
    batches shrink (`tail_batch_size`); without it every batch has batchSize files.
    """
    result = TickResult(resent=resend_overdue(store, job_id, send, now=now, queue_grace=queue_grace))
    snap: JobSnapshot = store.snapshot(job_id)
    if not snap.exists or not snap.source_listed or snap.listing_done or spec.suspend:
        return result
    free = min(room, window - snap.inflight)
    batch_id, listed = snap.next_batch, snap.listed
    while free > 0:
        size = tail_batch_size(spec.batch_size, snap.total - listed, workers) if workers else spec.batch_size
        segments, files = listing.take(listed, size)
        exhausted = files < size or listed + files >= snap.total
        if not files:
            store.mark_listing_done(job_id)
            break
        if store.hand_out(job_id, batch_id, segments, now, exhausted, count=files):
            send(job_id, batch_id)
            result.handed_out += 1
        if exhausted:
            break
        batch_id, listed, free = batch_id + 1, listed + files, free - 1
    return result


def resend_overdue(store: JobStore, job_id: str, send: Send, *, now: float, queue_grace: float) -> list[int]:
    """Send again every batch whose lease ran out or that waited unstarted longer than `queue_grace`.

    With `queue_grace=0` this sends every batch no worker holds, as a resume needs.
    """
    resent: list[int] = []
    for batch_id in store.overdue(job_id, now, queue_grace=queue_grace):
        store.rearm(job_id, batch_id, now)
        send(job_id, batch_id)
        resent.append(batch_id)
    return resent


def drop_inflight(store: JobStore, job_id: str) -> int:
    """Close every batch still out (no records for them), so workers drop their messages; return how many.

    For a job that ended before its last batch was back: nothing more of it is hashed.
    """
    batches = store.overdue(job_id, float("inf"), queue_grace=0.0)  # every batch out, held or not
    for batch_id in batches:
        store.finish_batch(job_id, batch_id, BatchTally())
    return len(batches)
