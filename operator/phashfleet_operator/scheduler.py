"""One reconcile of a PhashCronJob: read its runs, act on cronjobs.plan through the API, write its status."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping
from typing import Any

from phashfleet_operator import cronjobs, kube

GROUP, VERSION, JOBS = "phashfleet.io", "v1alpha1", "phashjobs"
CRONJOBS = "phashcronjobs"
log = logging.getLogger("phashfleet.operator")
Emit = Callable[[str, str, str], None]


def step(cronjob: Mapping[str, Any], now: dt.datetime, emit: Emit) -> dict[str, Any]:
    """Create the due run (409 AlreadyExists counts as created), delete replaced and pruned runs, post Events;
    return the status the PhashCronJob should have now. A bad schedule or time zone raises ScheduleError."""
    cronjob = cronjobs.plain(cronjob)
    meta, spec = cronjob["metadata"], cronjob["spec"]
    previous = cronjob.get("status") or {}
    last = cronjobs.parse_time(previous.get("lastScheduleTime")) or cronjobs.parse_time(meta["creationTimestamp"])
    assert last is not None  # the apiserver always sets creationTimestamp
    due_now = cronjobs.due(
        spec["schedule"],
        cronjobs.zone(spec.get("timeZone")),
        last=last,
        now=now,
        deadline_seconds=spec.get("startingDeadlineSeconds"),
    )
    jobs = kube.list_objects(GROUP, VERSION, JOBS, meta["namespace"], f"{cronjobs.CRONJOB_LABEL}={meta['name']}")
    runs = cronjobs.owned(jobs, meta["uid"])
    exists = due_now.time is not None and cronjobs.run_name(meta["name"], due_now.time) in {r.name for r in runs}
    todo = cronjobs.plan(spec, runs, due_now, exists=exists)
    for name in todo.delete:
        kube.delete_object(GROUP, VERSION, JOBS, meta["namespace"], name)
    deleted = set(todo.delete)
    runs = [r for r in runs if r.name not in deleted]
    scheduled = last if previous.get("lastScheduleTime") else None
    if exists:
        scheduled = due_now.time
    if todo.create is not None:
        manifest = cronjobs.job_manifest(cronjob, todo.create)
        job, created = kube.create_object(GROUP, VERSION, JOBS, manifest)
        name = manifest["metadata"]["name"]
        if created:
            emit("Normal", "SuccessfulCreate", f"created PhashJob {name} for {cronjobs.format_time(todo.create)}")
        elif not cronjobs.owned([job], meta["uid"]):
            emit("Warning", "NameTaken", f"PhashJob {name} exists and is not this PhashCronJob's run; not starting it")
        if created or cronjobs.owned([job], meta["uid"]):  # an existing one: made before a restart, not listed yet
            runs.append(cronjobs.run_of(job))
        scheduled = todo.create
    for kind, reason, message in todo.events:
        emit(kind, reason, message)
    for name in todo.delete:
        log.info("deleted PhashJob %s of %s", name, meta["name"])
    return cronjobs.cron_status(runs, scheduled, previous)
