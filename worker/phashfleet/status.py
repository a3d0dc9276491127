"""PhashJob status as data: phase, exact counts, progress, rate and conditions from a job snapshot."""

from __future__ import annotations

import datetime as dt
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from phashfleet.store import JobSnapshot

#: Condition type that is True in each phase (the others are set False).
PHASE_CONDITION = {"Running": "Progressing", "Pending": "Progressing", "Suspended": "Suspended",
                   "Succeeded": "Complete", "Failed": "Failed"}
CONDITION_TYPES = ("Progressing", "Suspended", "Complete", "Failed")
MAX_FAILURES = 20


def now_iso() -> str:
    """The current UTC time as Kubernetes writes it."""
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def progress_text(done: int, total: int) -> str:
    """Share done as "NN%" rounded down, so "100%" means every file has a record."""
    if total <= 0:
        return "100%" if done == 0 else "0%"
    return f"{min(100, done * 100 // total)}%"


@dataclass
class RateMeter:
    """Files per second over a sliding window of recent samples."""

    window_seconds: float = 10.0
    samples: deque = field(default_factory=deque)

    def update(self, done: int, at: float | None = None) -> float:
        """Add a sample (files done so far) and return the rate over the window."""
        at = time.monotonic() if at is None else at
        self.samples.append((at, done))
        while len(self.samples) > 2 and at - self.samples[0][0] > self.window_seconds:
            self.samples.popleft()
        (t0, d0), (t1, d1) = self.samples[0], self.samples[-1]
        return (d1 - d0) / (t1 - t0) if t1 > t0 else 0.0


def job_outcome(snap: JobSnapshot, suspend: bool) -> tuple[str, str, str]:
    """(phase, condition reason, message) from what the store knows: the one place that decides how a job ends."""
    if not snap.finished:
        if suspend:
            return "Suspended", "Suspended", "spec.suspend is true: no new batches (in-flight ones finish)"
        return "Running", "Hashing", "batches are being hashed"
    if snap.done_files == 0:
        return "Succeeded", "NoFiles", "the source lists no files that match include/exclude"
    if snap.ok == 0 and snap.failed > 0:
        return ("Failed", "AllFilesFailed",
                f"no file could be hashed: {snap.failed} failed, {snap.skipped} skipped (see status.failures)")
    return "Succeeded", "Completed", "every file has a record"


def conditions(phase: str, reason: str, message: str, previous: list[dict] | None, at: str) -> list[dict]:
    """Conditions for `phase`: its own type True with reason/message, the others False.

    lastTransitionTime only moves when a condition's status flips.
    """
    before = {c.get("type"): c for c in previous or []}
    true_type = PHASE_CONDITION[phase]
    result = []
    for ctype in CONDITION_TYPES:
        status = "True" if ctype == true_type else "False"
        old = before.get(ctype)
        changed = old is None or old.get("status") != status
        result.append({
            "type": ctype, "status": status,
            "reason": reason if status == "True" else f"Job{phase}",
            "message": message if status == "True" else "",
            "lastTransitionTime": at if changed else old.get("lastTransitionTime", at),
        })
    return result


def job_status(snap: JobSnapshot, *, phase: str, reason: str, message: str, rate: float,
               failures: list[dict], previous: dict[str, Any] | None = None, extra: dict[str, Any] | None = None,
               ) -> dict[str, Any]:
    """The whole status object for a job (the caller adds startTime, outputUri and the like via `extra`)."""
    previous = previous or {}
    total = snap.done_files if snap.finished else max(snap.total, snap.done_files)
    status = {
        "phase": phase,
        "total": total,
        "succeeded": snap.ok,
        "failed": snap.failed,
        "skipped": snap.skipped,
        "progress": progress_text(snap.done_files, total),
        "rate": f"{rate:.1f}",
        "failures": [{"path": f.get("path"), "reason": f.get("reason")} for f in failures[:MAX_FAILURES]],
        "conditions": conditions(phase, reason, message, previous.get("conditions"), now_iso()),
    }
    status.update(extra or {})
    return status
