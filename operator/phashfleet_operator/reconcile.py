"""Plain decisions the handlers act on: who may enqueue now and how many workers."""

from __future__ import annotations

import math
from dataclasses import dataclass

from phashfleet.job.status import ENDED as TERMINAL_PHASES  # noqa: F401 - the handlers' name for it
from phashfleet.state.store import JobSnapshot


def job_id(namespace: str, name: str, uid: str) -> str:
    """The id a PhashJob's state has in Redis: readable, and new for a re-created job of the same name."""
    return f"{namespace}.{name}.{uid[:8]}"


def grant(rank: int, waiting_ranks: list[int], queued: int, capacity: int) -> int:
    """How many new batches a job of priority `rank` may enqueue now.

    The queue holds at most `capacity` unstarted batches; while a job of higher priority is waiting
    for room, lower ones get none, so a high job overtakes a large low one as soon as room frees up.
    """
    if any(other > rank for other in waiting_ranks):
        return 0
    return max(0, capacity - queued)


def backlog_batches(snap: JobSnapshot, batch_size: int) -> int:
    """Batches of a job still to hash: in flight plus not yet handed out."""
    if not snap.exists:
        return 0
    remaining_files = max(0, snap.total - snap.listed) if not snap.listing_done else 0
    return snap.inflight + math.ceil(remaining_files / max(1, batch_size))


@dataclass(frozen=True)
class ScaleDecision:
    """The replicas to set, and since when the fleet has been idle (None while busy)."""

    replicas: int
    idle_since: float | None


def desired_replicas(
    queued: int,
    *,
    working: bool = False,
    current: int,
    per_worker: int,
    minimum: int,
    maximum: int,
    idle_since: float | None,
    now: float,
    cooldown: float,
) -> ScaleDecision:
    """Workers for `queued` messages waiting in the queue, `per_worker` each (as KEDA's listLength counts
    them): between min and max, never 0 while work remains; with nothing queued but batches still out
    (`working`) the fleet is kept; it goes to min only after `cooldown` seconds with no work at all."""
    if queued > 0:
        wanted = math.ceil(queued / max(1, per_worker))
        return ScaleDecision(max(1, minimum, min(maximum, wanted)), None)
    if working:
        return ScaleDecision(max(1, minimum, current), None)
    idle_since = now if idle_since is None else idle_since
    if now - idle_since >= cooldown:
        return ScaleDecision(minimum, idle_since)
    return ScaleDecision(max(current, minimum), idle_since)


#: Seconds before the first retry after a transient error (a source or Redis that cannot be reached); doubles.
RETRY_BASE_SECONDS = 1.0
#: The longest wait between two retries.
RETRY_MAX_SECONDS = 30.0


def retry_delay(retry: int) -> float:
    """Seconds to wait before retry number `retry` (0 first) after a transient error: 1, 2, 4, ... up to 30."""
    return min(RETRY_MAX_SECONDS, RETRY_BASE_SECONDS * 2 ** min(retry, 16))


def no_workers_since(since: float | None, *, ready: int | None, progressed: bool, now: float) -> float | None:
    """Since when a job with backlog has had no running worker and no file done (None while it has either).

    `ready` is the worker Deployment's ready replicas (0 when it is missing); None, unknown (the API
    could not be read), keeps the judgement as it was.
    """
    if ready is None:
        return since
    if ready > 0 or progressed:
        return None
    return now if since is None else since
