"""PhashJob status as data: phase, exact counts, progress, rate and conditions from a job snapshot."""

from __future__ import annotations

import datetime as dt
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from phashfleet.files.schemes import is_s3
from phashfleet.job.spec import JobSpec, schema_of
from phashfleet.state.keys import MAX_FAILURES
from phashfleet.state.store import JobSnapshot

#: Condition type that is True in each phase (the others are set False).
PHASE_CONDITION = {
    "Running": "Progressing",
    "Pending": "Progressing",
    "Suspended": "Suspended",
    "Succeeded": "Complete",
    "Failed": "Failed",
}
CONDITION_TYPES = ("Progressing", "Queued", "Suspended", "Complete", "Failed")
#: Every phase, in the CRD's order (its status.phase enum).
PHASES: tuple[str, ...] = tuple(schema_of("status.phase")["enum"])
#: Phases a job never leaves.
ENDED = ("Succeeded", "Failed")
#: Phases of a job that has state in Redis and is hashing, or paused by spec.suspend.
ACTIVE = ("Running", "Suspended")


def now_iso() -> str:
    """The current UTC time as Kubernetes writes it."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def progress_text(done: int, total: int) -> str:
    """Share done as "NN%" rounded down, so "100%" means every file has a record."""
    if total <= 0:
        return "100%" if done == 0 else "0%"
    return f"{min(100, done * 100 // total)}%"


@dataclass
class RateMeter:
    """Files per second over a sliding window of recent samples."""

    window_seconds: float = 10.0
    samples: deque[tuple[float, int]] = field(default_factory=deque)

    def update(self, done: int, at: float | None = None) -> float:
        """Add a sample (files done so far) and return the rate over the window."""
        at = time.monotonic() if at is None else at
        self.samples.append((at, done))
        while len(self.samples) > 2 and at - self.samples[0][0] > self.window_seconds:
            self.samples.popleft()
        (t0, d0), (t1, d1) = self.samples[0], self.samples[-1]
        return (d1 - d0) / (t1 - t0) if t1 > t0 else 0.0


#: Failure codes that mean the workers are set up wrong, not the files: what to fix, naming the setting.
WORKER_SETTINGS = {
    "outside_roots": "the job's source is not under the workers' PHASHFLEET_ALLOWED_ROOTS (chart value "
    "source.allowedRoots, or the mountPaths of source.volumes)",
    "credentials": "the workers' S3 credentials are missing or refused (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, "
    "chart value source.s3.existingSecret)",
}
#: Words in a failure reason that name a credentials problem (botocore's and S3's names for them).
_CREDENTIAL_WORDS = (
    "NoCredentialsError",
    "PartialCredentialsError",
    "CredentialRetrievalError",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
)


def worker_setting_of(record: dict[str, Any]) -> str | None:
    """The WORKER_SETTINGS key a failed record points at, or None when the file itself is to blame."""
    reason = record.get("reason") or ""
    code = reason.split(":", 1)[0].strip()
    if code == "outside_roots":
        return "outside_roots"
    on_s3 = is_s3(str(record.get("path") or ""))
    if any(word in reason for word in _CREDENTIAL_WORDS) or (code == "permission_denied" and on_s3):
        return "credentials"
    return None


def worker_misconfiguration(snap: JobSnapshot, failures: Sequence[dict[str, Any]], first_batch: int) -> str | None:
    """Why the workers cannot hash this job at all, or None.

    Decided once at least a first batch's worth of files (`first_batch`, or every file of a smaller
    job) has a record: none hashed or skipped, and every failure recorded names the same worker setting.
    """
    needed = 1 if snap.finished else max(1, min(first_batch, snap.total or first_batch))
    if snap.ok or snap.skipped or not failures or snap.failed < needed:
        return None
    settings = {worker_setting_of(f) for f in failures}
    setting = settings.pop() if len(settings) == 1 else None
    if setting is None:
        return None
    return (
        f"{snap.failed} of the first {snap.done_files} files failed with {setting} "
        f"(e.g. {failures[0].get('path')!r}): {WORKER_SETTINGS[setting]}; fix it, then create the job again"
    )


def too_many_failures(snap: JobSnapshot, max_failed_percent: float | None) -> str | None:
    """Why the failed share is above spec.failurePolicy.maxFailedPercent, once that is certain; else None.

    Certain once the listing is done: the total is known and failures only grow.
    """
    if max_failed_percent is None or not snap.listing_done:
        return None
    files = max(snap.listed, snap.done_files)
    if files == 0 or snap.failed * 100 <= max_failed_percent * files:
        return None
    return (
        f"{snap.failed} of {files} files failed ({snap.failed * 100 / files:.1f}%), above "
        f"spec.failurePolicy.maxFailedPercent {max_failed_percent:g}%"
    )


def job_outcome(
    snap: JobSnapshot,
    suspend: bool,
    *,
    failures: Sequence[dict[str, Any]] = (),
    first_batch: int = 1,
    max_failed_percent: float | None = None,
) -> tuple[str, str, str]:
    """(phase, condition reason, message) from what the store knows: the one place that decides how a job ends.

    `failures` are the store's first failed records; `first_batch` is spec.batchSize; a job can end
    Failed before every batch is back (a worker misconfiguration, too many failures).
    """
    misconfigured = worker_misconfiguration(snap, failures, first_batch) if snap.exists else None
    if misconfigured:
        return "Failed", "WorkerConfiguration", misconfigured
    if snap.finished and snap.done_files == 0:
        return "Succeeded", "NoFiles", "the source lists no files that match include/exclude"
    if snap.finished and snap.ok == 0 and snap.failed > 0:
        return (
            "Failed",
            "AllFilesFailed",
            f"no file could be hashed: {snap.failed} failed, {snap.skipped} skipped (see status.failures)",
        )
    too_many = too_many_failures(snap, max_failed_percent)
    if too_many:
        return "Failed", "TooManyFailures", too_many
    if not snap.finished:
        if suspend:
            return "Suspended", "Suspended", "spec.suspend is true: no new batches (in-flight ones finish)"
        return "Running", "Hashing", "batches are being hashed"
    return "Succeeded", "Completed", "every file has a record"


def spec_outcome(snap: JobSnapshot, spec: JobSpec, failures: Sequence[dict[str, Any]]) -> tuple[str, str, str]:
    """job_outcome for a job's spec: its suspend, batch size and failure policy."""
    return job_outcome(
        snap, spec.suspend, failures=failures, first_batch=spec.batch_size, max_failed_percent=spec.max_failed_percent
    )


def pending_status() -> dict[str, Any]:
    """The status of a job just accepted: Pending since now (its first tick adds the counts and conditions)."""
    return {"phase": "Pending", "startTime": now_iso()}


def waiting_status(reason: str, message: str, previous: dict[str, Any]) -> dict[str, Any]:
    """A job that cannot go on for now (its source or Redis is unreachable): the phase it had if it was active,
    else Pending, with a Progressing condition that says why (the counts stay as they were)."""
    held = previous.get("phase")
    phase = held if isinstance(held, str) and held in ACTIVE else "Pending"
    return {"phase": phase, "conditions": conditions(phase, reason, message, previous.get("conditions"), now_iso())}


def queued_status(reason: str, message: str, previous: dict[str, Any]) -> dict[str, Any]:
    """A job held back before it starts (its namespace runs as many jobs as it may): Pending, with a Queued
    condition that says why and which jobs run."""
    return {
        "phase": "Pending",
        "conditions": conditions("Pending", reason, message, previous.get("conditions"), now_iso(), true_type="Queued"),
    }


def failed_status(reason: str, message: str, previous: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A terminal Failed status for a job that stopped before (or instead of) hashing: reason and message say why."""
    at = now_iso()
    return {
        "phase": "Failed",
        "completionTime": at,
        "conditions": conditions("Failed", reason, message, (previous or {}).get("conditions"), at),
    }


def conditions(
    phase: str,
    reason: str,
    message: str,
    previous: list[dict[str, Any]] | None,
    at: str,
    *,
    true_type: str | None = None,
) -> list[dict[str, Any]]:
    """Conditions for `phase`: its own type (or `true_type`) True with reason/message, the others False.

    lastTransitionTime only moves when a condition's status flips.
    """
    before = {c.get("type"): c for c in previous or []}
    true_type = true_type or PHASE_CONDITION[phase]
    result = []
    for ctype in CONDITION_TYPES:
        status = "True" if ctype == true_type else "False"
        old = before.get(ctype)
        changed = old is None or old.get("status") != status
        result.append(
            {
                "type": ctype,
                "status": status,
                "reason": reason if status == "True" else f"Job{phase}",
                "message": message if status == "True" else "",
                "lastTransitionTime": at if changed or old is None else old.get("lastTransitionTime", at),
            }
        )
    return result


def job_status(
    snap: JobSnapshot,
    *,
    phase: str,
    reason: str,
    message: str,
    rate: float,
    failures: list[dict[str, Any]],
    previous: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The whole status object for a job: counts, progress, rate, failures, conditions, and completionTime once
    `phase` has ended (the caller adds startTime, outputUri and the like via `extra`)."""
    previous = previous or {}
    at = now_iso()
    total = snap.done_files if snap.finished else max(snap.total, snap.done_files)
    status = {
        "phase": phase,
        "total": total,
        "succeeded": snap.ok,
        "cached": snap.cached,
        "failed": snap.failed,
        "skipped": snap.skipped,
        "progress": progress_text(snap.done_files, total),
        "rate": f"{rate:.1f}",
        "failures": [{"path": f.get("path"), "reason": f.get("reason")} for f in failures[:MAX_FAILURES]],
        "conditions": conditions(phase, reason, message, previous.get("conditions"), at),
    }
    if phase in ENDED:
        status["completionTime"] = at
    status.update(extra or {})
    return status
