"""kopf handlers for PhashJobs and PhashCronJobs: thin, each a few lines around the job engine or the scheduler."""

from __future__ import annotations

import datetime as dt
import functools
import logging
import os
import time
from collections.abc import Callable, Mapping
from typing import Any, ParamSpec, TypeVar

import kopf
import redis
import urllib3
from kubernetes.client.exceptions import ApiException

from phashfleet import metrics
from phashfleet.job.spec import SpecError, parse_spec
from phashfleet.job.status import ACTIVE, failed_status, pending_status
from phashfleet.logs import about
from phashfleet_operator import cadence, scheduler
from phashfleet_operator.cronjobs import ScheduleError
from phashfleet_operator.engine import Emit, Unavailable
from phashfleet_operator.kube import patch_status, post_event
from phashfleet_operator.reconcile import TERMINAL_PHASES, NamespaceJob, job_id, retry_delay
from phashfleet_operator.runtime import Runtime

GROUP, VERSION, PLURAL = "phashfleet.io", "v1alpha1", "phashjobs"
#: Seconds between two looks at a PhashCronJob: how late after its schedule time a run may be created.
CRON_INTERVAL = 5.0
log = logging.getLogger("phashfleet.operator")
#: apiserver answers worth retrying: conflict, too many requests, and its own failures.
TRANSIENT_API_STATUSES = (409, 429, 500, 502, 503, 504)
P = ParamSpec("P")
R = TypeVar("R")


def _emit(body: kopf.Body) -> Emit:
    """An Event poster for one PhashJob; every Event is also a log line (Warning ones at WARNING)."""
    meta = body.get("metadata") or {}
    where = about(meta.get("namespace"), meta.get("name"))

    def emit(kind: str, reason: str, message: str) -> None:
        log.log(
            logging.WARNING if kind == "Warning" else logging.INFO,
            "%s: %s",
            reason,
            message,
            extra={**where, "reason": reason},
        )
        try:
            post_event(body, kind, reason, message)
        except Exception as exc:  # noqa: BLE001 - an Event is information; never fail a reconcile for it
            log.warning("could not post %s event: %s", reason, exc, extra=where)

    return emit


def _timed(handler: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Count errors and time every run of a handler."""

    def wrap(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)  # kopf names the handler (logs, progress annotations) after its __qualname__
        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            except Exception:
                metrics.RECONCILE_ERRORS.labels(handler).inc()
                raise
            finally:
                metrics.RECONCILE_DURATION.labels(handler).observe(time.perf_counter() - started)

        return run

    return wrap


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: Runtime, **_: Any) -> None:
    """Keep kopf's bookkeeping in annotations (the status schema is strict) and be quiet in Events."""
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="phashfleet.io")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix="phashfleet.io")
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 60
    settings.networking.error_backoffs = [1, 2, 5, 10]
    # How long a silent peer (a killed replica) keeps the others paused before they take over.
    settings.peering.lifetime = int(os.environ.get("PHASHFLEET_PEERING_LIFETIME", "60"))
    # A namespaced operator's RBAC cannot list namespaces or CRDs cluster-wide; don't make kopf try.
    settings.scanning.disabled = memo.namespaced


@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.resume(GROUP, VERSION, PLURAL, when=lambda status, **_: status.get("phase") not in TERMINAL_PHASES)
@_timed("start")
def start(
    spec: kopf.Spec,
    status: kopf.Status,
    namespace: str | None,
    name: str,
    uid: str,
    body: kopf.Body,
    patch: kopf.Patch,
    memo: Runtime,
    **_: Any,
) -> None:
    """Validate what the schema cannot, create the job's Redis state and mark it Running."""
    try:
        job = parse_spec(dict(spec))
    except SpecError as exc:
        patch.status.update(failed_status("InvalidSpec", str(exc), status))
        _emit(body)("Warning", "Failed", str(exc))
        raise kopf.PermanentError(str(exc)) from exc
    if not status.get("phase"):
        _emit(body)("Normal", "Started", f"hashing with {job.algorithm}, hash size {job.hash_size}")
        patch.status.update(pending_status())
    memo.engine.forget(job_id(namespace or "", name, uid))  # a PhashJob always has a namespace


@kopf.index(GROUP, VERSION, PLURAL)
def phashjobs_by_namespace(
    *, namespace: str | None, name: str, meta: kopf.Meta, status: kopf.Status, **_: Any
) -> dict[str, NamespaceJob]:
    """Every PhashJob by namespace with its creation time and phase, for the namespace limit (kopf keeps it)."""
    return {namespace or "": NamespaceJob(name, meta.get("creationTimestamp") or "", status.get("phase"))}


@kopf.timer(
    GROUP,
    VERSION,
    PLURAL,
    interval=cadence.TIMER_SECONDS,
    initial_delay=0.0,
    backoff=2.0,
    when=lambda status, **_: status.get("phase") not in (*TERMINAL_PHASES, None),
)
def tick(*, namespace: str | None, name: str, uid: str, memo: Runtime, retry: int = 0, **kwargs: Any) -> None:
    """Every TIMER_SECONDS: a full tick once a second, or at once when the job's last batch is back; in
    between, a top-up of the queue for a job with batches still to hand out."""
    jid, now = job_id(namespace or "", name, uid), time.monotonic()  # a PhashJob always has a namespace
    memo.cadence = memo.cadence or cadence.TickCadence()  # the memo is kopf's copy for this PhashJob
    if memo.cadence.due(now, retry=retry, look=lambda: memo.store.snapshot(jid)):
        _tick(namespace=namespace or "", name=name, uid=uid, memo=memo, retry=retry, **kwargs)
        memo.cadence.ticked(now)
    elif not memo.cadence.listing_done:
        memo.engine.top_up(jid, parse_spec(dict(kwargs["spec"])))


@_timed("tick")
def _tick(
    spec: kopf.Spec,
    status: kopf.Status,
    namespace: str,
    name: str,
    uid: str,
    body: kopf.Body,
    meta: kopf.Meta,
    memo: Runtime,
    phashjobs_by_namespace: kopf.Index[str, NamespaceJob] | None = None,
    retry: int = 0,
    **_: Any,
) -> None:
    """About once a second: hand out batches, fold counts, write status (only what changed); a job its
    namespace's limit holds back stays Pending (Queued).

    A source or Redis that cannot be reached, or an apiserver that refuses the write for now, retries
    the tick after a growing delay (kopf.TemporaryError); the status says why meanwhile.
    """
    if status.get("phase") not in ACTIVE:
        # kopf's index (the unit tests pass none)
        jobs = phashjobs_by_namespace.get(namespace, ()) if phashjobs_by_namespace else ()
        if (held := memo.limits.held(namespace, name, jobs, dict(status))) is not None:
            _write_status(status, held, namespace, name, meta, retry)
            return
    job = parse_spec(dict(spec))
    try:
        new = memo.engine.tick(job_id(namespace, name, uid), job, dict(status), _emit(body), retry=retry)
    except Unavailable as exc:
        _write_status(status, exc.status, namespace, name, meta, retry)
        raise kopf.TemporaryError(str(exc), delay=exc.delay) from exc
    _write_status(status, new, namespace, name, meta, retry)


def _write_status(
    status: Mapping[str, Any],
    new: dict[str, Any],
    namespace: str,
    name: str,
    meta: kopf.Meta | None,
    retry: int,
    plural: str = PLURAL,
) -> None:
    if meta is not None:
        new["observedGeneration"] = meta.get("generation")
    changed = {k: v for k, v in new.items() if status.get(k) != v}
    try:
        if changed and patch_status(GROUP, VERSION, plural, namespace, name, changed) and plural == PLURAL:
            metrics.STATUS_WRITES.labels(namespace, name).inc()
    except ApiException as exc:
        if exc.status not in TRANSIENT_API_STATUSES:
            raise
        raise kopf.TemporaryError(
            f"the apiserver refused the status for now: {exc.status} {exc.reason}", delay=retry_delay(retry)
        ) from exc
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise kopf.TemporaryError(f"cannot reach the apiserver: {exc}", delay=retry_delay(retry)) from exc


@kopf.on.delete(GROUP, VERSION, PLURAL)
@_timed("delete")
def delete(namespace: str | None, name: str, uid: str, memo: Runtime, retry: int = 0, **_: Any) -> None:
    """Stop the job's work: its state goes, so queued messages for it are dropped by workers."""
    jid = job_id(namespace or "", name, uid)  # a PhashJob always has a namespace
    memo.engine.forget(jid, deleted=True)
    try:
        memo.store.delete(jid)
    except redis.RedisError as exc:
        raise kopf.TemporaryError(
            f"Redis cannot be reached to delete the job's state: {exc}", delay=retry_delay(retry)
        ) from exc


@kopf.timer(GROUP, VERSION, scheduler.CRONJOBS, interval=CRON_INTERVAL, initial_delay=0.5, backoff=CRON_INTERVAL)
@_timed("cron")
def cron(
    body: kopf.Body, status: kopf.Status, namespace: str | None, name: str, memo: Runtime, retry: int = 0, **_: Any
) -> None:
    """Every few seconds: start the PhashCronJob's due run, delete replaced and old runs, write its status."""
    emit = _emit(body)

    def once(kind: str, reason: str, message: str) -> None:
        # A decision that holds (Forbid waiting, a bad schedule) is re-made every tick: say it once.
        if memo.cron_said != (reason, message):
            memo.cron_said = (reason, message)
            emit(kind, reason, message)

    try:
        new = scheduler.step(body, dt.datetime.now(dt.UTC), once)
    except ScheduleError as exc:
        once("Warning", "UnknownTimeZone" if str(exc).startswith("spec.timeZone") else "InvalidSchedule", str(exc))
        return
    _write_status(status, new, namespace or "", name, None, retry, plural=scheduler.CRONJOBS)  # a namespaced kind


# A failing probe must answer /healthz at once: with kopf's default retry the request waits 60 s, so a
# Redis name that resolves a second after install kept the operator's startup probe failing for a minute.
@kopf.on.probe(id="redis", errors=kopf.ErrorsMode.PERMANENT)
def redis_probe(memo: Runtime, **_: Any) -> bool:
    """Liveness detail: can the operator reach Redis."""
    return bool(memo.redis.ping())
