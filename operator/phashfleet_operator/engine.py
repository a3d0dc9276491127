"""The operator's job engine: one tick per job turns Redis state into batches and status, and asks for the collect."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis

from phashfleet import metrics
from phashfleet.files.listing import SourceNetworkError
from phashfleet.job.collect import CollectPlan
from phashfleet.job.dispatch import (
    dispatch_tick,
    drop_inflight,
    job_window,
    queue_grace_for,
    resend_overdue,
)
from phashfleet.job.finish import collect_due, collect_plan, collecting_message, output_problem, report_fields
from phashfleet.job.lister import ListingMap, ListPlan
from phashfleet.job.spec import JobSpec, spec_default
from phashfleet.job.status import (
    ACTIVE,
    PHASES,
    RateMeter,
    failed_status,
    job_status,
    now_iso,
    spec_outcome,
    waiting_status,
)
from phashfleet.logs import about
from phashfleet.state import keys
from phashfleet.state.store import JobSnapshot, ListingState, SharedJobStore
from phashfleet_operator.config import OperatorConfig
from phashfleet_operator.demand import QueueDemand
from phashfleet_operator.reconcile import (
    TERMINAL_PHASES,
    Contender,
    backlog_batches,
    fair_grant,
    no_workers_since,
    retry_delay,
)

log = logging.getLogger("phashfleet.operator")
Send = Callable[[str, int], None]
SendCollect = Callable[[str, CollectPlan], None]
SendList = Callable[[str, int, ListPlan, float], None]  # (job id, shard, plan, delay in s)
Emit = Callable[[str, str, str], None]  # (type Normal/Warning, reason, message)


@dataclass
class JobMemory:
    """What the operator keeps in memory per job: small and rebuilt from Redis after a restart."""

    #: The job's listing positions over its shards, once every shard is listed (None before).
    listing: ListingMap | None = None
    rate: RateMeter = field(default_factory=RateMeter)
    rank: int = 1
    waiting: bool = False
    #: Its batches in flight before this tick hands any out (its fair share counts them).
    inflight: int = 0
    #: Since when the job has had backlog, no running worker and no progress (None: not so).
    no_workers_since: float | None = None
    no_workers_warned: bool = False
    last_done: int = 0
    #: The reason of the transient error the job is waiting out (None: none), so its Event is posted once.
    unavailable: str | None = None


class _ListingFailed(Exception):
    """A lister could not list the source, and retrying cannot help: its `error` (reason, message)."""

    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(error.get("message"))
        self.error = error


class Unavailable(Exception):
    """A transient error (source or Redis unreachable): retry the tick after `delay` s; `status` says so."""

    def __init__(self, message: str, status: dict[str, Any], delay: float) -> None:
        super().__init__(message)
        self.status = status
        self.delay = delay


def _about(job_id: str) -> dict[str, Any]:
    """Log `extra=` naming the PhashJob of a job id."""
    return about(*keys.job_ref(job_id))


class JobEngine:
    """Runs job ticks against a store; thread-safe, since kopf runs sync handlers in a thread pool."""

    def __init__(
        self,
        store: SharedJobStore,
        send: Send,
        config: OperatorConfig,
        worker_count: Callable[[], int],
        ready_workers: Callable[[], int | None] | None = None,
        send_collect: SendCollect | None = None,
        send_list: SendList | None = None,
    ) -> None:
        self.store = store
        self.send = send
        #: Asks a worker to list one shard of a job's source (the operator lists nothing itself).
        self.send_list = send_list
        #: Asks a worker to collect a finished job (group, write the output); None: nobody collects (tests).
        self.send_collect = send_collect
        self.config = config
        self.worker_count = worker_count
        #: Running (ready) workers, 0 when their Deployment is missing, None when unknown; None: never known.
        self.ready_workers = ready_workers
        self.jobs: dict[str, JobMemory] = {}
        #: job id -> (uri, detail) of the last source a lister of it could not reach (for the status).
        self._unreachable: dict[str, tuple[str, str]] = {}
        #: The shared queue's measured intake, which sizes its room (demand.py).
        self.demand = QueueDemand()
        self.phases: dict[str, str] = {}  # every job this operator has seen, for the jobs-by-phase gauge
        self._lock = threading.Lock()

    def _memory(self, job_id: str, spec: JobSpec) -> JobMemory:
        with self._lock:
            if job_id not in self.jobs:
                self.jobs[job_id] = JobMemory(rank=spec.priority_rank)
            return self.jobs[job_id]

    def forget(self, job_id: str, *, deleted: bool = False) -> None:
        """Drop a job's working memory (finished), or everything about it (deleted)."""
        with self._lock:
            self.jobs.pop(job_id, None)
            self._unreachable.pop(job_id, None)
            if deleted:
                self.phases.pop(job_id, None)

    def ensure_state(self, job_id: str, spec: JobSpec) -> bool:
        """Create the job's Redis state if it has none (first start, or Redis lost it); True if created.

        Its total is known once the workers have listed the source (`_list`).
        """
        if self.store.snapshot(job_id).exists:
            return False
        created = self.store.create(job_id, spec.hash_settings(), 0)
        self._memory(job_id, spec).listing = None  # a new state has a listing of its own
        return created

    def _room(self, job_id: str, memory: JobMemory, workers: int, queued: int) -> int:
        with self._lock:
            others = [(jid, m.rank) for jid, m in self.jobs.items() if m.waiting and jid != job_id]
        # Read now, not at each job's last tick: a count a second old makes whoever ticks next take more.
        counts = self.store.inflight_counts([jid for jid, _ in others]) if others else []
        waiting = [Contender(jid, keys.job_ref(jid)[0], rank, n) for (jid, rank), n in zip(others, counts, strict=True)]
        self.demand.before_refill(time.monotonic(), queued)
        # An autoscaler on the queue's length (ours or KEDA's) sees only what waits there: let the queue hold
        # enough to ask for the largest fleet, or it could never scale past the workers it has.
        cfg = self.config
        scaling = cfg.max_replicas * cfg.batches_per_worker if cfg.autoscaling != "none" else 0
        capacity = max(2, workers * cfg.queue_per_worker, scaling, self.demand.room())
        me = Contender(job_id, keys.job_ref(job_id)[0], memory.rank, memory.inflight)
        return fair_grant(me, waiting, queued, capacity)

    def _hand_out(self, job_id: str, spec: JobSpec, memory: JobMemory, listing: ListingMap, now: float) -> int:
        """Send overdue batches again and hand out new ones within the job's room; return how many were sent."""
        workers, queued = self.worker_count(), self.store.queue_length()
        sent = dispatch_tick(
            self.store,
            job_id,
            spec,
            listing,
            self.send,
            now=now,
            room=self._room(job_id, memory, workers, queued),
            window=job_window(workers, max(self.config.job_window, 2 * self.demand.room())),
            queue_grace=queue_grace_for(queued),
            workers=workers,
        )
        count = sent.handed_out + len(sent.resent)
        self.demand.after_refill(count)
        return count

    def top_up(self, job_id: str, spec: JobSpec) -> int:
        """Between two full ticks, refill the queue for a job with batches still to hand out; return how many.

        The queue stays short, so priority and fair shares act within a fraction of a second, and a fleet
        that empties it quickly does not wait for the next full tick. No status is written: Redis errors are
        left to the next full tick, which reports them.
        """
        with self._lock:
            memory = self.jobs.get(job_id)
        if memory is None or memory.listing is None or not memory.waiting or spec.suspend:
            return 0
        try:
            memory.inflight = self.store.snapshot(job_id).inflight
            count = self._hand_out(job_id, spec, memory, memory.listing, time.time())
            memory.waiting = not self.store.snapshot(job_id).listing_done
        except redis.RedisError as exc:
            log.debug("top-up skipped: %s", exc, extra=_about(job_id))
            return 0
        return count

    def tick(self, job_id: str, spec: JobSpec, status: dict[str, Any], emit: Emit, *, retry: int = 0) -> dict[str, Any]:
        """Advance one job and return its new status (the caller patches only what changed).

        Raises Unavailable when the source or Redis cannot be reached: the caller writes its status and
        retries after its delay (`retry` is how many retries came before).
        """
        memory = self._memory(job_id, spec)
        try:
            new = self._advance(job_id, spec, status, emit, memory, retry)
        except SourceNetworkError as exc:
            raise self._unavailable(
                memory, status, "SourceUnavailable", f"the source cannot be listed: {exc}", emit, retry
            ) from exc
        except redis.RedisError as exc:
            raise self._unavailable(
                memory, status, "RedisUnavailable", f"Redis cannot be reached: {exc}", emit, retry
            ) from exc
        if memory.unavailable:
            emit("Normal", "Recovered", f"{memory.unavailable} is over; the job goes on")
            memory.unavailable = None
        return new

    def _unavailable(
        self, memory: JobMemory, status: dict[str, Any], reason: str, what: str, emit: Emit, retry: int
    ) -> Unavailable:
        delay = retry_delay(retry)
        message = f"{what}; retrying in {delay:g} s (retry {retry + 1})"
        if memory.unavailable != reason:
            emit("Warning", reason, message)
            memory.unavailable = reason
        return Unavailable(message, waiting_status(reason, message, status), delay)

    def _advance(
        self, job_id: str, spec: JobSpec, status: dict[str, Any], emit: Emit, memory: JobMemory, retry: int
    ) -> dict[str, Any]:
        previous_phase = status.get("phase")
        exists = self.store.snapshot(job_id).exists
        if previous_phase in ACTIVE and not exists:
            emit("Warning", "StateLost", "Redis lost this job's state; hashing it again from the start")
        if not exists and (problem := output_problem(spec, self.config.output_roots or None, probe=False)):
            return self.failed(status, "OutputFailed", problem, emit)
        self.ensure_state(job_id, spec)
        now = time.time()
        snap = self.store.snapshot(job_id)
        if not snap.source_listed:
            if (listing := self._list(job_id, spec, snap, status, emit, memory, now, retry)) is not None:
                return listing
            snap = self.store.snapshot(job_id)
        if memory.listing is None:
            memory.listing = ListingMap.of(self.store.listing(job_id), ListPlan.of(spec).chunk)
            log.info("the workers listed %d files", memory.listing.total, extra=_about(job_id))
        memory.waiting, memory.inflight = not snap.listing_done and not spec.suspend, snap.inflight
        if spec.suspend:
            resend_overdue(self.store, job_id, self.send, now=now, queue_grace=float("inf"))
        else:
            self._hand_out(job_id, spec, memory, memory.listing, now)
        snap = self.store.snapshot(job_id)
        memory.waiting = not snap.listing_done and not spec.suspend
        failures = self.store.failures(job_id)
        phase, reason, message = spec_outcome(snap, spec, failures)
        if phase == "Running":
            reason, message = self._no_workers(memory, snap, spec, now, emit) or (reason, message)
        extra: dict[str, Any] = {"startTime": status.get("startTime") or now_iso()}
        if phase in TERMINAL_PHASES:
            if not snap.finished:
                # It failed before its last batch was back: the rest is not hashed, and no partial output written.
                drop_inflight(self.store, job_id)
                self._ask_collect(job_id, collect_plan(spec, writes=False), now)  # only its results' expiry
            elif snap.collected is None:
                if collect_due(snap, now, queue_grace=queue_grace_for(self.store.queue_length())):
                    self._ask_collect(job_id, collect_plan(spec), now)
                phase, reason, message = "Running", "Collecting", collecting_message(snap, spec)
            elif "error" in snap.collected:
                self.store.expire(job_id, spec.ttl_seconds)
                self.forget(job_id)
                return self.failed(status, "OutputFailed", str(snap.collected["error"]), emit)
            else:
                extra.update(report_fields(snap.collected))
        if phase in TERMINAL_PHASES:
            self.store.expire(job_id, spec.ttl_seconds)
            self.forget(job_id)
            log.info(
                "finished %s (%s): %d of %d ok, %d failed, %d skipped",
                phase,
                reason,
                snap.ok,
                snap.total,
                snap.failed,
                snap.skipped,
                extra={
                    **_about(job_id),
                    "phase": phase,
                    "reason": reason,
                    "total": snap.total,
                    "ok": snap.ok,
                    "failed": snap.failed,
                    "skipped": snap.skipped,
                },
            )
            if phase == "Succeeded":
                emit("Normal", "Completed", f"{snap.ok} ok, {snap.failed} failed, {snap.skipped} skipped")
            else:
                emit("Warning", "Failed", message)
        else:
            _announce_suspension(previous_phase, phase, message, emit)
        rate = memory.rate.update(snap.done_files)
        new = job_status(
            snap,
            phase=phase,
            reason=reason,
            message=message,
            rate=rate,
            failures=failures,
            previous=status,
            extra=extra,
        )
        self._export(job_id, snap, phase)
        return new

    def _list(
        self,
        job_id: str,
        spec: JobSpec,
        snap: JobSnapshot,
        status: dict[str, Any],
        emit: Emit,
        memory: JobMemory,
        now: float,
        retry: int,
    ) -> dict[str, Any] | None:
        """While the workers list the source: (re)send due shards, and say how far they are, or why not.

        None when the listing is complete after all (the caller goes on to hand out batches).
        """
        memory.waiting = False  # nothing to hand out yet: it asks no room of the dispatcher
        try:
            state = self._listing_state(job_id, spec, snap, memory, now, retry)
        except _ListingFailed as failed:
            self._ask_collect(job_id, collect_plan(spec, writes=False), now)  # only its results' expiry
            self.store.expire(job_id, spec.ttl_seconds)
            self.forget(job_id)
            return self.failed(status, str(failed.error["reason"]), str(failed.error["message"]), emit)
        if state is None:
            return None  # the listing ended with this tick's sends (a lister in this process): hand out now
        listed = f"{len(state.listed)} of {state.shards} shards" if state.shards is not None else "its top folder first"
        phase, reason = "Running", "Listing"
        message = f"workers are listing the source: {state.files_so_far} files so far ({listed})"
        if spec.suspend:
            phase, reason, message = (
                "Suspended",
                "Suspended",
                "spec.suspend is true; the source is not listed meanwhile",
            )
        elif stalled := self._no_workers(memory, snap, spec, now, emit, progress=state.files_so_far):
            reason, message = stalled
        _announce_suspension(status.get("phase"), phase, message, emit)
        self._export(job_id, snap, phase)
        return job_status(
            snap,
            phase=phase,
            reason=reason,
            message=message,
            rate=0.0,
            failures=[],
            previous=status,
            extra={"startTime": status.get("startTime") or now_iso()},
        )

    def _listing_state(
        self, job_id: str, spec: JobSpec, snap: JobSnapshot, memory: JobMemory, now: float, retry: int
    ) -> ListingState | None:
        """Send what is due (again) and wait out what a lister could not reach; the state to show, None when complete.

        Raises SourceNetworkError while the source cannot be reached (the failed shard is sent again with the
        retry's delay, and the job waits until a lister has it again), _ListingFailed when it cannot be listed.
        """
        plan = ListPlan.of(spec)
        state = self.store.listing(job_id)
        retried = self._retry_unreachable(job_id, state, plan, now, retry)
        if not spec.suspend and self.send_list is not None:
            due = state.due(now, queue_grace=queue_grace_for(self.store.queue_length()))
            for shard in due:
                self.store.listing_sent(job_id, shard, now)
                self.send_list(job_id, shard, plan, 0.0)
            if due:
                log.info("asked the workers to list shards %s of the source", _ranges(due), extra=_about(job_id))
                # A lister in this process (tests) is done already: what it could not reach is retried now.
                retried += self._retry_unreachable(job_id, self.store.listing(job_id), plan, now, retry)
        state = self.store.listing(job_id)
        for error in state.errors.values():
            if not error.get("transient"):
                raise _ListingFailed(error)
        waiting = [s for s in range(state.shards or 1) if s not in state.listed and s not in state.leases]
        if any(shard not in state.listed for shard in retried) or (
            memory.unavailable == "SourceUnavailable" and waiting
        ):
            uri, detail = self._unreachable.get(job_id, ("", "a lister could not reach it"))
            raise SourceNetworkError(uri, detail)
        if self.store.snapshot(job_id).source_listed:
            return None
        return state

    def _retry_unreachable(self, job_id: str, state: ListingState, plan: ListPlan, now: float, retry: int) -> list[int]:
        """Send every shard a lister could not reach again, after the retry's delay; return those shards."""
        if self.send_list is None:
            return []
        retried = []
        for shard, error in sorted(state.errors.items()):
            if error.get("transient"):
                self._unreachable[job_id] = (str(error.get("uri", "")), str(error.get("detail", error["message"])))
                self.store.listing_sent(job_id, shard, now + retry_delay(retry))
                self.send_list(job_id, shard, plan, retry_delay(retry))
                retried.append(shard)
        return retried

    @staticmethod
    def _batch_size(snap: JobSnapshot) -> int:
        return max(1, int((snap.settings or {}).get("batch_size", spec_default("batchSize"))))

    def _ask_collect(self, job_id: str, plan: CollectPlan, now: float) -> None:
        """Send the collect message for a job (again) and note when."""
        if self.send_collect is None:
            self.store.collected(job_id, {})  # nobody collects: the job ends with its counts alone
            return
        self.store.collect_sent(job_id, now)
        self.send_collect(job_id, plan)
        log.info("asked a worker to collect the job", extra=_about(job_id))

    def _no_workers(
        self,
        memory: JobMemory,
        snap: JobSnapshot,
        spec: JobSpec,
        now: float,
        emit: Emit,
        *,
        progress: int | None = None,
    ) -> tuple[str, str] | None:
        """(NoWorkers, message) once a running job has waited long enough with no worker; None otherwise.

        Progress is files done, or `progress` (files listed, while the source is being listed).
        """
        ready = self.ready_workers() if self.ready_workers else None
        done = snap.done_files if progress is None else progress
        progressed = done != memory.last_done
        memory.last_done = done
        memory.no_workers_since = no_workers_since(memory.no_workers_since, ready=ready, progressed=progressed, now=now)
        if memory.no_workers_since is None:
            if memory.no_workers_warned:
                emit("Normal", "WorkersRunning", "workers are running again; batches are being hashed")
                memory.no_workers_warned = False
            return None
        waited = now - memory.no_workers_since
        if waited < self.config.no_workers_seconds:
            return None
        waiting = (
            f"{backlog_batches(snap, spec.batch_size)} batches wait"
            if snap.source_listed
            else "the source waits to be listed"
        )
        message = (
            f"no worker has been running for {waited:.0f} s while "
            f"{waiting}: check the worker Deployment "
            f"{self.config.worker_deployment!r} and its pods"
        )
        if not memory.no_workers_warned:
            emit("Warning", "NoWorkers", message)
            memory.no_workers_warned = True
        return "NoWorkers", message

    def failed(self, status: dict[str, Any], reason: str, message: str, emit: Emit) -> dict[str, Any]:
        """A terminal Failed status with a condition that says why."""
        emit("Warning", "Failed", message)
        return failed_status(reason, message, status)

    def backlog(self) -> int:
        """Batches still to hash, and collects still to run, across every job with state in Redis."""
        total = 0
        for job_id in self.store.job_ids():
            snap = self.store.snapshot(job_id)
            if not snap.source_listed:  # its shards to list: each is work for a worker
                state = self.store.listing(job_id)
                total += max(1, (state.shards or 1) - len(state.listed))
                continue
            total += backlog_batches(snap, self._batch_size(snap))
            total += int(snap.finished and snap.collected is None)  # its collect: a worker must stay for it
        return total

    def _export(self, job_id: str, snap: JobSnapshot, phase: str) -> None:
        with self._lock:
            self.phases[job_id] = phase
            by_phase = dict.fromkeys(PHASES, 0)
            for known in self.phases.values():
                by_phase[known] += 1
        for known, count in by_phase.items():
            metrics.JOBS.labels(known).set(count)
        namespace, name = keys.job_ref(job_id)
        metrics.JOB_PROGRESS.labels(namespace, name).set(snap.done_files / snap.total if snap.total else 1.0)
        metrics.INFLIGHT_BATCHES.labels(namespace, name).set(snap.inflight)
        for state, value in (
            ("total", snap.total),
            ("succeeded", snap.ok),
            ("failed", snap.failed),
            ("skipped", snap.skipped),
        ):
            metrics.JOB_FILES.labels(namespace, name, state).set(value)


def _announce_suspension(previous_phase: str | None, phase: str, message: str, emit: Emit) -> None:
    """The Suspended and Resumed Events, once each time spec.suspend flips."""
    if phase == "Suspended" and previous_phase != "Suspended":
        emit("Normal", "Suspended", message)
    elif phase == "Running" and previous_phase == "Suspended":
        emit("Normal", "Resumed", "spec.suspend is false; the job goes on")


def _ranges(numbers: list[int]) -> str:
    """1, 2, 3, 7 as "1-3, 7" (for a log line)."""
    runs: list[list[int]] = []
    for n in numbers:
        if runs and n == runs[-1][-1] + 1:
            runs[-1].append(n)
        else:
            runs.append([n])
    return ", ".join(f"{r[0]}-{r[-1]}" if len(r) > 1 else str(r[0]) for r in runs)
