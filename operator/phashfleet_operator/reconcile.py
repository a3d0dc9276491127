"""Plain decisions the handlers act on: who may enqueue now and how many workers."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from phashfleet.job.status import ACTIVE, ENDED
from phashfleet.state.store import JobSnapshot

#: The handlers' name for the phases a job never leaves.
TERMINAL_PHASES = ENDED


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


@dataclass(frozen=True)
class Contender:
    """A job waiting for room in the queue: its namespace, priority rank and batches in flight."""

    job_id: str
    namespace: str
    rank: int
    inflight: int


def fair_grant(job: Contender, others: Sequence[Contender], queued: int, capacity: int) -> int:
    """How many new batches `job` may enqueue now: priority first (`grant`), then a fair share per namespace.

    The jobs of the top rank waiting for room share a pool: the queue's free room plus their batches in
    flight. Each namespace among them gets an equal part of it, each of its jobs an equal part of that,
    and a job may enqueue what its part leaves, up to the free room. Workers take batches in order, so
    equal batches in flight are an equal share of the hashing; a namespace over its part (it came first)
    gets nothing until the others have caught up.
    """
    free = grant(job.rank, [o.rank for o in others], queued, capacity)
    if free == 0:
        return 0
    peers = [job, *(o for o in others if o.rank == job.rank and o.job_id != job.job_id)]
    by_namespace: dict[str, int] = {}
    for p in peers:
        by_namespace[p.namespace] = by_namespace.get(p.namespace, 0) + p.inflight
    part = _split(free + sum(by_namespace.values()), by_namespace, job.namespace)
    siblings = {p.job_id: p.inflight for p in peers if p.namespace == job.namespace}
    own = _split(part, siblings, job.job_id)
    return max(0, min(free, part - by_namespace[job.namespace], own - job.inflight))


def _split(pool: int, holders: dict[str, int], who: str) -> int:
    """`who`'s equal part of `pool` among `holders` (name -> what it holds now); the remainder goes one
    each to those holding least (then by name), so the parts add up to the pool."""
    base, extra = divmod(pool, len(holders))
    order = sorted(holders, key=lambda name: (holders[name], name))
    return base + (1 if order.index(who) < extra else 0)


@dataclass(frozen=True)
class NamespaceJob:
    """A PhashJob as the namespace limit sees it: its name, creation time (RFC 3339) and phase."""

    name: str
    created: str
    phase: str | None


@dataclass(frozen=True)
class Held:
    """Why a job waits for its namespace's limit: the jobs running, and its place in line (1: next)."""

    running: tuple[str, ...]
    place: int


def namespace_hold(name: str, jobs: Iterable[NamespaceJob], limit: int) -> Held | None:
    """None when job `name` may start under its namespace's limit of `limit` running jobs (0: none); else Held.

    Running and Suspended jobs hold their places; the jobs not started yet start in creation order (then
    by name) as places free up. A job the list does not have yet comes last.
    """
    if limit <= 0:
        return None
    jobs = list(jobs)
    running = sorted((j for j in jobs if j.phase in ACTIVE), key=lambda j: (j.created, j.name))
    waiting = sorted(
        (j for j in jobs if j.phase not in ACTIVE and j.phase not in TERMINAL_PHASES), key=lambda j: (j.created, j.name)
    )
    if any(j.name == name for j in running):
        return None
    names = [j.name for j in waiting]
    ahead = names.index(name) if name in names else len(names)
    free = limit - len(running)
    if ahead < free:
        return None
    return Held(tuple(j.name for j in running), ahead - max(0, free) + 1)


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
    (`working`) the fleet is kept; it goes to min only after `cooldown` seconds with no work at all.

    While work remains the fleet only grows: a queue that drains as workers take batches would otherwise
    shrink the fleet mid-job (stopping a worker that was hashing), as HPA's scale-down window prevents."""
    if queued > 0:
        wanted = max(math.ceil(queued / max(1, per_worker)), current)
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
    return min(RETRY_MAX_SECONDS, RETRY_BASE_SECONDS * 2.0 ** min(retry, 16))


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
