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
from phashfleet.files.listing import SourceError, SourceNetworkError
from phashfleet.job.collect import CollectPlan
from phashfleet.job.dispatch import (
    ListingCursor,
    count_files,
    dispatch_tick,
    drop_inflight,
    job_window,
    queue_grace_for,
    resend_overdue,
)
from phashfleet.job.finish import collect_due, collect_plan, collecting_message, output_problem, report_fields
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
from phashfleet.state.store import JobSnapshot, SharedJobStore
from phashfleet_operator.config import OperatorConfig
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
Emit = Callable[[str, str, str], None]  # (type Normal/Warning, reason, message)


@dataclass
class JobMemory:
    """What the operator keeps in memory per job: small and rebuilt from Redis after a restart."""

    cursor: ListingCursor
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
    ) -> None:
        self.store = store
        self.send = send
        #: Asks a worker to collect a finished job (group, write the output); None: nobody collects (tests).
        self.send_collect = send_collect
        self.config = config
        self.worker_count = worker_count
        #: Running (ready) workers, 0 when their Deployment is missing, None when unknown; None: never known.
        self.ready_workers = ready_workers
        self.jobs: dict[str, JobMemory] = {}
        self.phases: dict[str, str] = {}  # every job this operator has seen, for the jobs-by-phase gauge
        self._lock = threading.Lock()

    def _memory(self, job_id: str, spec: JobSpec) -> JobMemory:
        with self._lock:
            if job_id not in self.jobs:
                self.jobs[job_id] = JobMemory(ListingCursor(spec, self.config.allowed_roots), rank=spec.priority_rank)
            return self.jobs[job_id]

    def forget(self, job_id: str, *, deleted: bool = False) -> None:
        """Drop a job's working memory (finished), or everything about it (deleted)."""
        with self._lock:
            self.jobs.pop(job_id, None)
            if deleted:
                self.phases.pop(job_id, None)

    def ensure_state(self, job_id: str, spec: JobSpec) -> bool:
        """Create the job's Redis state if it has none (first start, or Redis lost it); True if created."""
        if self.store.snapshot(job_id).exists:
            return False
        total = count_files(spec, self.config.allowed_roots)
        created = self.store.create(job_id, spec.hash_settings(), total)
        self._memory(job_id, spec).cursor.position = -1  # the listing restarts from the beginning
        return created

    def _room(self, job_id: str, memory: JobMemory, workers: int) -> int:
        with self._lock:
            others = [(jid, m.rank) for jid, m in self.jobs.items() if m.waiting and jid != job_id]
        # Read now, not at each job's last tick: a count a second old makes whoever ticks next take more.
        counts = self.store.inflight_counts([jid for jid, _ in others]) if others else []
        waiting = [Contender(jid, keys.job_ref(jid)[0], rank, n) for (jid, rank), n in zip(others, counts, strict=True)]
        queued = self.store.queue_length()
        # An autoscaler on the queue's length (ours or KEDA's) sees only what waits there: let the queue hold
        # enough to ask for the largest fleet, or it could never scale past the workers it has.
        cfg = self.config
        scaling = cfg.max_replicas * cfg.batches_per_worker if cfg.autoscaling != "none" else 0
        capacity = max(2, workers * cfg.queue_per_worker, scaling)
        me = Contender(job_id, keys.job_ref(job_id)[0], memory.rank, memory.inflight)
        return fair_grant(me, waiting, queued, capacity)

    def tick(self, job_id: str, spec: JobSpec, status: dict[str, Any], emit: Emit, *, retry: int = 0) -> dict[str, Any]:
        """Advance one job and return its new status (the caller patches only what changed).

        Raises Unavailable when the source or Redis cannot be reached: the caller writes its status and
        retries after its delay (`retry` is how many retries came before).
        """
        memory = self._memory(job_id, spec)
        try:
            new = self._advance(job_id, spec, status, emit, memory)
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
        self, job_id: str, spec: JobSpec, status: dict[str, Any], emit: Emit, memory: JobMemory
    ) -> dict[str, Any]:
        previous_phase = status.get("phase")
        exists = self.store.snapshot(job_id).exists
        if previous_phase in ACTIVE and not exists:
            emit("Warning", "StateLost", "Redis lost this job's state; hashing it again from the start")
        if not exists and (problem := output_problem(spec, self.config.output_roots or None, probe=False)):
            return self.failed(status, "OutputFailed", problem, emit)
        try:
            if self.ensure_state(job_id, spec):
                log.info("listed %d files", self.store.snapshot(job_id).total, extra=_about(job_id))
        except SourceNetworkError:
            raise
        except SourceError as exc:
            return self.failed(status, exc.reason, str(exc), emit)
        now = time.time()
        snap = self.store.snapshot(job_id)
        memory.waiting, memory.inflight = not snap.listing_done and not spec.suspend, snap.inflight
        if spec.suspend:
            resend_overdue(self.store, job_id, self.send, now=now, queue_grace=float("inf"))
        else:
            workers = self.worker_count()
            try:
                dispatch_tick(
                    self.store,
                    job_id,
                    spec,
                    memory.cursor,
                    self.send,
                    now=now,
                    room=self._room(job_id, memory, workers),
                    window=job_window(workers, self.config.job_window),
                    queue_grace=queue_grace_for(self.store.queue_length()),
                    workers=workers,
                )
            except SourceNetworkError:
                raise
            except SourceError as exc:
                return self.failed(status, exc.reason, str(exc), emit)
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
        elif phase == "Suspended" and previous_phase != "Suspended":
            emit("Normal", "Suspended", message)
        elif phase == "Running" and previous_phase == "Suspended":
            emit("Normal", "Resumed", "spec.suspend is false; handing out batches again")
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

    def _ask_collect(self, job_id: str, plan: CollectPlan, now: float) -> None:
        """Send the collect message for a job (again) and note when."""
        if self.send_collect is None:
            self.store.collected(job_id, {})  # nobody collects: the job ends with its counts alone
            return
        self.store.collect_sent(job_id, now)
        self.send_collect(job_id, plan)
        log.info("asked a worker to collect the job", extra=_about(job_id))

    def _no_workers(
        self, memory: JobMemory, snap: JobSnapshot, spec: JobSpec, now: float, emit: Emit
    ) -> tuple[str, str] | None:
        """(NoWorkers, message) once a running job has waited long enough with no worker; None otherwise."""
        ready = self.ready_workers() if self.ready_workers else None
        progressed = snap.done_files != memory.last_done
        memory.last_done = snap.done_files
        memory.no_workers_since = no_workers_since(memory.no_workers_since, ready=ready, progressed=progressed, now=now)
        if memory.no_workers_since is None:
            if memory.no_workers_warned:
                emit("Normal", "WorkersRunning", "workers are running again; batches are being hashed")
                memory.no_workers_warned = False
            return None
        waited = now - memory.no_workers_since
        if waited < self.config.no_workers_seconds:
            return None
        message = (
            f"no worker has been running for {waited:.0f} s while "
            f"{backlog_batches(snap, spec.batch_size)} batches wait: check the worker Deployment "
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
            batch = max(1, int((snap.settings or {}).get("batch_size", spec_default("batchSize"))))
            total += backlog_batches(snap, batch)
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
