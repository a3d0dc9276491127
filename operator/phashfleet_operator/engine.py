"""The operator's job engine: one tick per job turns Redis state into batches, status and a finish."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from phashfleet import keys, metrics
from phashfleet.dispatch import (
    ListingCursor, count_files, dispatch_tick, job_window, queue_grace_for, resend_overdue,
)
from phashfleet.finish import finish_job
from phashfleet.jobspec import JobSpec
from phashfleet.outputs import OutputError
from phashfleet.sources import SourceError
from phashfleet.status import RateMeter, job_outcome, job_status, now_iso
from phashfleet_operator.config import OperatorConfig
from phashfleet_operator.reconcile import TERMINAL_PHASES, backlog_batches, grant

Send = Callable[[str, int], None]
Emit = Callable[[str, str, str], None]  # (type Normal/Warning, reason, message)


@dataclass
class JobMemory:
    """What the operator keeps in memory per job: small and rebuilt from Redis after a restart."""

    cursor: ListingCursor
    rate: RateMeter = field(default_factory=RateMeter)
    rank: int = 1
    waiting: bool = False


class JobEngine:
    """Runs job ticks against a store; thread-safe, since kopf runs sync handlers in a thread pool."""

    def __init__(self, store, send: Send, config: OperatorConfig, worker_count: Callable[[], int]) -> None:
        self.store = store
        self.send = send
        self.config = config
        self.worker_count = worker_count
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
            waiting = [m.rank for jid, m in self.jobs.items() if m.waiting and jid != job_id]
        queued = self.store.queue_length()
        capacity = max(2, workers * self.config.queue_per_worker)
        return grant(memory.rank, waiting, queued, capacity)

    def tick(self, job_id: str, spec: JobSpec, status: dict[str, Any], emit: Emit) -> dict[str, Any]:
        """Advance one job and return its new status (the caller patches only what changed)."""
        memory = self._memory(job_id, spec)
        previous_phase = status.get("phase")
        if previous_phase in ("Running", "Suspended") and not self.store.snapshot(job_id).exists:
            emit("Warning", "StateLost", "Redis lost this job's state; hashing it again from the start")
        try:
            self.ensure_state(job_id, spec)
        except SourceError as exc:
            return self.failed(status, exc.reason, str(exc), emit)
        now = time.time()
        snap = self.store.snapshot(job_id)
        memory.waiting = not snap.listing_done and not spec.suspend
        if spec.suspend:
            resend_overdue(self.store, job_id, self.send, now=now, queue_grace=float("inf"))
        else:
            workers = self.worker_count()
            try:
                dispatch_tick(self.store, job_id, spec, memory.cursor, self.send, now=now,
                              room=self._room(job_id, memory, workers),
                              window=job_window(workers, self.config.job_window),
                              queue_grace=queue_grace_for(self.store.queue_length()), workers=workers)
            except SourceError as exc:
                return self.failed(status, exc.reason, str(exc), emit)
        snap = self.store.snapshot(job_id)
        memory.waiting = not snap.listing_done and not spec.suspend
        phase, reason, message = job_outcome(snap, spec.suspend)
        extra: dict[str, Any] = {"startTime": status.get("startTime") or now_iso()}
        if phase in TERMINAL_PHASES:
            try:
                extra.update(finish_job(self.store, job_id, spec, self.config.output_roots or None))
            except (OutputError, OSError) as exc:
                return self.failed(status, "OutputFailed", f"spec.output.uri: {exc}", emit)
            extra["completionTime"] = now_iso()
            self.store.expire(job_id, spec.ttl_seconds)
            self.forget(job_id)
            if phase == "Succeeded":
                emit("Normal", "Completed", f"{snap.ok} ok, {snap.failed} failed, {snap.skipped} skipped")
            else:
                emit("Warning", "Failed", message)
        elif phase == "Suspended" and previous_phase != "Suspended":
            emit("Normal", "Suspended", message)
        elif phase == "Running" and previous_phase == "Suspended":
            emit("Normal", "Resumed", "spec.suspend is false; handing out batches again")
        rate = memory.rate.update(snap.done_files)
        new = job_status(snap, phase=phase, reason=reason, message=message, rate=rate,
                         failures=self.store.failures(job_id), previous=status, extra=extra)
        self._export(job_id, snap, phase)
        return new

    def failed(self, status: dict[str, Any], reason: str, message: str, emit: Emit) -> dict[str, Any]:
        """A terminal Failed status with a condition that says why."""
        from phashfleet.status import conditions  # noqa: PLC0415

        emit("Warning", "Failed", message)
        return {"phase": "Failed", "completionTime": now_iso(),
                "conditions": conditions("Failed", reason, message, status.get("conditions"), now_iso())}

    def backlog(self) -> int:
        """Batches still to hash across every job with state in Redis."""
        total = 0
        for raw in self.store.client.smembers(keys.jobs()):
            snap = self.store.snapshot(raw.decode())
            batch = max(1, int((snap.settings or {}).get("batch_size", 64)))
            total += backlog_batches(snap, batch)
        return total

    def _export(self, job_id: str, snap, phase: str) -> None:
        with self._lock:
            self.phases[job_id] = phase
            by_phase = {p: 0 for p in ("Pending", "Running", "Suspended", "Succeeded", "Failed")}
            for known in self.phases.values():
                by_phase[known] += 1
        for known, count in by_phase.items():
            metrics.JOBS.labels(known).set(count)
        namespace, name = job_id.split(".")[:2]
        metrics.JOB_PROGRESS.labels(namespace, name).set(snap.done_files / snap.total if snap.total else 1.0)
        metrics.INFLIGHT_BATCHES.labels(namespace, name).set(snap.inflight)
        for state, value in (("total", snap.total), ("succeeded", snap.ok), ("failed", snap.failed),
                             ("skipped", snap.skipped)):
            metrics.JOB_FILES.labels(namespace, name, state).set(value)
