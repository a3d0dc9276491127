"""A PhashCronJob's decisions as plain functions: due runs, run names, concurrency, history pruning."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from phashfleet.job.status import ENDED

#: Schedule times counted past lastScheduleTime before giving up counting (batch/v1 CronJob's limit).
MAX_MISSED = 100
#: The label every run carries, valued with its PhashCronJob's name.
CRONJOB_LABEL = "phashfleet.io/cronjob"
#: The annotation that records a run's scheduled time (RFC 3339), as CronJob's batch.kubernetes.io/cronjob-scheduled-timestamp.
SCHEDULED_ANNOTATION = "phashfleet.io/scheduled-time"


class ScheduleError(ValueError):
    """A schedule or time zone the operator cannot use; the message starts with the field's path."""


@dataclass(frozen=True)
class Due:
    """What the schedule asks for now."""

    #: The scheduled time of the run to start now, or None.
    time: dt.datetime | None
    #: Earlier schedule times since the last run passed over for it (MAX_MISSED + 1 means more than MAX_MISSED).
    missed: int = 0
    #: The next schedule time after now.
    next_time: dt.datetime | None = None


@dataclass(frozen=True)
class Run:
    """One PhashJob of a PhashCronJob, as the decisions need it."""

    name: str
    uid: str
    phase: str | None
    created: str
    completed: str | None = None
    deleting: bool = False

    @property
    def active(self) -> bool:
        """Not ended and not being deleted."""
        return self.phase not in ENDED and not self.deleting


@dataclass(frozen=True)
class Plan:
    """What one reconcile of a PhashCronJob does."""

    #: The run to create (its scheduled time), or None.
    create: dt.datetime | None = None
    #: Runs to delete: replaced active ones and pruned history.
    delete: tuple[str, ...] = ()
    #: (type, reason, message) of the Events to post.
    events: tuple[tuple[str, str, str], ...] = field(default_factory=tuple)


def plain(value: Any) -> Any:
    """A deep copy made of dicts and lists (kopf's body views are neither, and the API client needs them)."""
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def parse_time(text: str | None) -> dt.datetime | None:
    """An RFC 3339 time as the apiserver writes it (…Z), or None."""
    if not text:
        return None
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def format_time(when: dt.datetime) -> str:
    """A time as the apiserver writes it: UTC, whole seconds, Z."""
    return when.astimezone(dt.UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def zone(name: str | None) -> dt.tzinfo:
    """The time zone a schedule is read in: the named IANA zone, or UTC."""
    if not name:
        return dt.UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ScheduleError(f"spec.timeZone: unknown time zone {name!r}") from exc


def check_schedule(schedule: str) -> None:
    """Raise ScheduleError unless croniter reads the schedule (ranges included, which the CRD cannot check)."""
    if not croniter.is_valid(schedule):
        raise ScheduleError(f"spec.schedule: {schedule!r} is not a valid cron schedule")


def due(
    schedule: str,
    tz: dt.tzinfo,
    *,
    last: dt.datetime,
    now: dt.datetime,
    deadline_seconds: int | None,
) -> Due:
    """The latest schedule time in (last, now], later than now - deadline_seconds, as batch/v1 CronJob picks it.

    `last` is lastScheduleTime, or the PhashCronJob's creation before its first run.
    """
    check_schedule(schedule)
    earliest = last
    if deadline_seconds is not None:
        earliest = max(earliest, now - dt.timedelta(seconds=deadline_seconds))
    # Schedule times fall on whole minutes: "at or before now" is "before now's second + 1 s".
    base = (now.replace(microsecond=0) + dt.timedelta(seconds=1)).astimezone(tz)
    next_time = croniter(schedule, now.astimezone(tz)).get_next(dt.datetime).astimezone(dt.UTC)
    latest = croniter(schedule, base).get_prev(dt.datetime).astimezone(dt.UTC)
    if latest <= earliest:
        return Due(None, next_time=next_time)
    times = croniter(schedule, earliest.astimezone(tz))
    seen = 0
    while seen <= MAX_MISSED:
        if times.get_next(dt.datetime).astimezone(dt.UTC) > now:
            break
        seen += 1
    return Due(latest, missed=seen - 1, next_time=next_time)


def run_name(cronjob: str, scheduled: dt.datetime) -> str:
    """`<cronjob>-<scheduled unix minute>`: the same for every operator that creates it, so a run exists once."""
    return f"{cronjob}-{int(scheduled.timestamp()) // 60}"


def run_of(job: Mapping[str, Any]) -> Run:
    """A PhashJob object (as the API returns it) as a Run."""
    meta = job.get("metadata") or {}
    status = job.get("status") or {}
    return Run(
        name=meta["name"],
        uid=meta.get("uid", ""),
        phase=status.get("phase"),
        created=meta.get("creationTimestamp") or "",
        completed=status.get("completionTime"),
        deleting=bool(meta.get("deletionTimestamp")),
    )


def owned(jobs: Sequence[Mapping[str, Any]], uid: str) -> list[Run]:
    """The PhashJobs whose controller is the PhashCronJob with this uid, as Runs."""
    return [
        run_of(job)
        for job in jobs
        if any(
            ref.get("uid") == uid and ref.get("controller")
            for ref in (job.get("metadata") or {}).get("ownerReferences") or ()
        )
    ]


def prune(runs: Sequence[Run], *, successful_limit: int, failed_limit: int) -> list[str]:
    """The ended runs beyond the history limits, oldest first (by creation time, then name)."""
    doomed: list[str] = []
    for phase, limit in (("Succeeded", successful_limit), ("Failed", failed_limit)):
        ended = sorted((r for r in runs if r.phase == phase and not r.deleting), key=lambda r: (r.created, r.name))
        doomed += [r.name for r in ended[: max(0, len(ended) - limit)]]
    return doomed


def plan(
    spec: Mapping[str, Any],
    runs: Sequence[Run],
    due_now: Due,
    *,
    exists: bool = False,
) -> Plan:
    """Whether to create the due run, which runs to delete, and the Events that say so.

    `exists`: the due run is already among `runs` (made before a restart): nothing more to start.
    """
    delete = prune(
        runs,
        successful_limit=int(spec.get("successfulJobsHistoryLimit", 3)),
        failed_limit=int(spec.get("failedJobsHistoryLimit", 1)),
    )
    when = due_now.time
    if when is None or exists or spec.get("suspend"):
        return Plan(delete=tuple(delete))
    events: list[tuple[str, str, str]] = []
    active = sorted(r.name for r in runs if r.active)
    policy = spec.get("concurrencyPolicy", "Forbid")
    if active and policy == "Forbid":
        message = (
            f"not starting the run of {format_time(when)}: {', '.join(active)} has not ended (concurrencyPolicy Forbid)"
        )
        return Plan(delete=tuple(delete), events=(("Normal", "JobAlreadyActive", message),))
    if active and policy == "Replace":
        delete = [*active, *delete]
        events.append(("Normal", "SuccessfulDelete", f"deleted {', '.join(active)} (concurrencyPolicy Replace)"))
    if due_now.missed:
        many = f"more than {MAX_MISSED}" if due_now.missed > MAX_MISSED else str(due_now.missed)
        events.append(
            (
                "Warning",
                "MissedSchedules",
                f"{many} earlier schedule times were missed; starting only the latest, {format_time(when)}",
            )
        )
    return Plan(create=when, delete=tuple(delete), events=tuple(events))


def job_manifest(cronjob: Mapping[str, Any], scheduled: dt.datetime) -> dict[str, Any]:
    """The PhashJob of one run: the template's labels, annotations and spec, owned by the PhashCronJob."""
    meta = cronjob["metadata"]
    template = cronjob["spec"]["jobTemplate"]
    tmeta = template.get("metadata") or {}
    return {
        "apiVersion": "phashfleet.io/v1alpha1",
        "kind": "PhashJob",
        "metadata": {
            "name": run_name(meta["name"], scheduled),
            "namespace": meta["namespace"],
            "labels": {**(tmeta.get("labels") or {}), CRONJOB_LABEL: meta["name"]},
            "annotations": {**(tmeta.get("annotations") or {}), SCHEDULED_ANNOTATION: format_time(scheduled)},
            "ownerReferences": [
                {
                    "apiVersion": cronjob.get("apiVersion", "phashfleet.io/v1alpha1"),
                    "kind": cronjob.get("kind", "PhashCronJob"),
                    "name": meta["name"],
                    "uid": meta["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": dict(template["spec"]),
    }


def cron_status(runs: Sequence[Run], last_schedule: dt.datetime | None, previous: Mapping[str, Any]) -> dict[str, Any]:
    """status: lastScheduleTime, lastSuccessfulTime (kept once known) and the active runs, sorted by name."""
    succeeded = [r.completed for r in runs if r.phase == "Succeeded" and r.completed]
    last_success = max(
        [*succeeded, *([previous["lastSuccessfulTime"]] if previous.get("lastSuccessfulTime") else [])], default=None
    )
    status: dict[str, Any] = {
        "active": [{"name": r.name, "uid": r.uid} for r in sorted(runs, key=lambda r: r.name) if r.active],
    }
    if last_schedule is not None:
        status["lastScheduleTime"] = format_time(last_schedule)
    if last_success:
        status["lastSuccessfulTime"] = last_success
    return status
