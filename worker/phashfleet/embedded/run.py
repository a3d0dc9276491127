"""Run one PhashJob on this machine: the same dispatch and status logic as the operator, no cluster.

Embedded mode keeps state in memory and hashes batches in a process pool (every core); with a
Redis URL it uses the Redis store and real `phashfleet worker` processes, as a cluster would, on a
queue and key prefix of the run's own (a fleet on the same Redis never sees them), restarting a
worker that dies.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import signal
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING, Any

from phashfleet.files.listing import SourceNetworkError
from phashfleet.job.collect import collect
from phashfleet.job.complete import complete_batch
from phashfleet.job.dispatch import Send, dispatch_tick, job_window, queue_grace_for
from phashfleet.job.finish import collect_plan, output_problem, report_fields
from phashfleet.job.lister import ListingReader, list_job_here
from phashfleet.job.spec import JobSpec
from phashfleet.job.status import ENDED, RateMeter, failed_status, job_status, now_iso, spec_outcome
from phashfleet.results import batch_error, failed_records
from phashfleet.state import keys, result_store
from phashfleet.state.result_store import ResultStore
from phashfleet.state.store import JobStore, SharedJobStore

if TYPE_CHECKING:
    import redis

Progress = Callable[[int, int, float], None]  # (done, total, rate)

log = logging.getLogger("phashfleet.run")
#: Pauses (seconds) before a run whose source cannot be reached for now starts again, as the operator backs
#: off; after the last the run fails. A source that answers 404 or 403 fails at once.
UNREACHABLE_DELAYS = (1, 2, 4, 8, 16)

#: Seconds between the Redis driver's hand-out ticks (the operator ticks each job every second).
DRIVER_TICK = 0.1


@dataclass
class RunResult:
    """The final status and whether the run went as the manifest asked."""

    status: dict[str, Any]

    @property
    def ok(self) -> bool:
        """True unless the job Failed (a suspended job is not run, and that is what it asked for)."""
        return self.status.get("phase") != "Failed"


def _hash_batch(files: list[str], settings: dict[str, Any], roots: tuple[str, ...]) -> list[dict[str, Any]]:
    from phashfleet.hashing import Settings, hash_many

    return list(hash_many(files, Settings.from_job(settings, roots)))


def _final_status(
    store: JobStore,
    results: ResultStore,
    job_id: str,
    spec: JobSpec,
    started: str,
    rate: float,
    output_roots: Sequence[str] | None,
) -> dict[str, Any]:
    """Collect the job here (group, write the output; only expire its results if it failed early), then its status."""
    snap = store.snapshot(job_id)
    phase, reason, message = spec_outcome(snap, spec, store.failures(job_id))
    plan = collect_plan(spec, writes=snap.finished)  # a job that failed early writes no partial output
    report = collect(store, results, job_id, plan, output_roots=output_roots, now=time.time()) or {}
    if "error" in report:
        phase, reason, message = "Failed", "OutputFailed", report["error"]
    return job_status(
        snap,
        phase=phase,
        reason=reason,
        message=message,
        rate=rate,
        failures=store.failures(job_id),
        extra={"startTime": started, **report_fields(report)},
    )


def until_reachable(run: Callable[[], RunResult], delays: tuple[float, ...] = UNREACHABLE_DELAYS) -> RunResult:
    """`run()`, started again after each pause while its source cannot be reached (SourceNetworkError)."""
    for delay in delays:
        try:
            return run()
        except SourceNetworkError as exc:
            log.warning("%s; trying again in %g s", exc, delay)
            time.sleep(delay)
    return run()


def run_embedded(
    spec: JobSpec,
    job_id: str,
    roots: tuple[str, ...],
    *,
    jobs: int | None = None,
    progress: Progress | None = None,
    output_roots: Sequence[str] | None = None,
    results: ResultStore | None = None,
) -> RunResult:
    """Hash the job in a local process pool, with in-memory state; return the final status.

    Records go to `results` (by default the result store PHASHFLEET_RESULT_STORE names, or the user's cache).
    """
    from phashfleet.state.memory_store import MemoryJobStore

    store: JobStore = MemoryJobStore()
    results = results or result_store.from_env()
    if problem := output_problem(spec, output_roots):
        return RunResult(failed_status("OutputFailed", problem))
    started = now_iso()
    store.create(job_id, spec.hash_settings(), 0)
    epoch = store.snapshot(job_id).epoch
    listing = list_job_here(store, results, job_id, spec, roots)
    reader = ListingReader(results)
    workers = jobs or os.cpu_count() or 1
    meter = RateMeter()
    # Each batch being hashed -> (batch id, its files, tries so far).
    futures: dict[Future[list[dict[str, Any]]], tuple[int, list[str], int]] = {}
    with ProcessPoolExecutor(max_workers=workers) as pool:

        def submit(batch_id: int, files: list[str], tries: int) -> None:
            futures[pool.submit(_hash_batch, files, spec.hash_settings(), roots)] = (batch_id, files, tries)

        def send(jid: str, batch_id: int) -> None:
            segments = store.start_batch(jid, batch_id, float("inf"))
            if segments is not None:  # None: done or gone, which one process handing out cannot see
                submit(batch_id, reader.files(jid, epoch, segments), 0)

        while True:
            dispatch_tick(
                store, job_id, spec, listing, send, now=time.time(), room=workers * 2 - len(futures), window=workers * 2
            )
            if not futures:
                break
            done, _ = wait(futures, return_when=FIRST_COMPLETED)
            for future in done:
                batch_id, files, tries = futures.pop(future)
                try:
                    records = future.result()
                except Exception as exc:  # noqa: BLE001 - whatever a batch raises, it is tried again, then its files fail (as in a worker)
                    if tries < spec.max_retries:
                        submit(batch_id, files, tries + 1)
                        continue
                    records = failed_records(files, spec.hash_settings(), batch_error(exc))
                complete_batch(store, results, job_id, epoch, batch_id, records)
            snap = store.snapshot(job_id)
            if progress:
                progress(snap.done_files, snap.total, meter.update(snap.done_files))
            if spec_outcome(snap, spec, store.failures(job_id))[0] in ENDED:
                for future in futures:
                    future.cancel()  # it failed early: the batches not started are not worth hashing
                break
    rate = meter.update(store.snapshot(job_id).done_files)
    return RunResult(_final_status(store, results, job_id, spec, started, rate, output_roots))


def run_with_redis(
    spec: JobSpec,
    job_id: str,
    roots: tuple[str, ...],
    redis_url: str,
    *,
    jobs: int | None = None,
    progress: Progress | None = None,
    output_roots: Sequence[str] | None = None,
    start_workers: bool = True,
    results: ResultStore | None = None,
) -> RunResult:
    """Hash the job with real worker processes on a Redis broker; return the final status.

    The run starts `jobs` workers on a queue and key prefix of its own (`keys.run_names`) and keeps them
    running; its queue is deleted at the end and its keys expire after the job's ttlSecondsAfterFinished.
    With `start_workers=False` no workers are started: ones already running on that Redis (on this
    process's queue and prefix, the fleet's by default) hash the job.
    """
    names = keys.run_names(uuid.uuid4().hex[:12]) if start_workers else {}
    results = results or result_store.from_env()
    with (
        _environment({"PHASHFLEET_REDIS_URL": redis_url, result_store.RESULT_STORE_ENV: results.url, **names}),
        _sigterm_exits(),
        tempfile.TemporaryDirectory(prefix="phashfleet-run-metrics-") as metrics_dir,
    ):
        env = {
            **os.environ,
            "PHASHFLEET_ALLOWED_ROOTS": os.pathsep.join(roots),
            "PROMETHEUS_MULTIPROC_DIR": metrics_dir,
        }
        return _drive(
            spec,
            job_id,
            roots,
            redis_url,
            jobs=jobs or os.cpu_count() or 1,
            progress=progress,
            output_roots=output_roots,
            worker_env=env if start_workers else None,
            results=results,
        )


def _drive(
    spec: JobSpec,
    job_id: str,
    roots: tuple[str, ...],
    redis_url: str,
    *,
    jobs: int,
    progress: Progress | None,
    output_roots: Sequence[str] | None,
    worker_env: dict[str, str] | None,
    results: ResultStore,
) -> RunResult:
    from phashfleet.embedded.supervise import CrashLoop, WorkerPool
    from phashfleet.state.redis_store import RedisJobStore
    from phashfleet.worker.actor import send_batch
    from phashfleet.worker.broker import make_broker, redis_client

    client = redis_client(redis_url)
    broker = make_broker(client)
    store: SharedJobStore = RedisJobStore(client)
    store.delete(job_id)
    if problem := output_problem(spec, output_roots):
        return RunResult(failed_status("OutputFailed", problem))
    started = now_iso()
    store.create(job_id, spec.hash_settings(), 0)
    listing = list_job_here(store, results, job_id, spec, roots)
    pool = WorkerPool(jobs, worker_env) if worker_env is not None else None
    meter = RateMeter()
    window = job_window(jobs)
    send = functools.partial(send_batch, broker)
    try:
        if pool is not None:
            pool.start()
        while True:
            if pool is not None and pool.check():
                resend_in_flight(store, job_id, send, now=time.time())
            dispatch_tick(
                store,
                job_id,
                spec,
                listing,
                send,
                now=time.time(),
                room=window,
                window=window,
                queue_grace=queue_grace_for(store.queue_length()),
                workers=jobs,
            )
            snap = store.snapshot(job_id)
            if progress:
                progress(snap.done_files, snap.total, meter.update(snap.done_files))
            if snap.finished or spec.suspend:  # a suspended job hands nothing out: it would never finish
                break
            if spec_outcome(snap, spec, store.failures(job_id))[0] in ENDED:  # failed early
                break
            time.sleep(DRIVER_TICK)  # the hand-out and progress pace, not a wait for a condition
        return RunResult(
            _final_status(store, results, job_id, spec, started, meter.update(snap.done_files), output_roots)
        )
    except CrashLoop as exc:
        collect(store, results, job_id, collect_plan(spec, writes=False), output_roots=None, now=time.time())
        snap = store.snapshot(job_id)
        return RunResult(
            job_status(
                snap,
                phase="Failed",
                reason="WorkersCrashing",
                message=str(exc),
                rate=meter.update(snap.done_files),
                failures=store.failures(job_id),
                extra={"startTime": started},
            )
        )
    finally:
        if pool is not None:
            pool.stop()
        store.expire(job_id, spec.ttl_seconds)
        if pool is not None:
            _clean_up(client, spec.ttl_seconds)


def resend_in_flight(store: JobStore, job_id: str, send: Send, *, now: float) -> list[int]:
    """A worker died: send every batch in flight again now, not when its lease or Dramatiq's heartbeat runs out.

    A batch counts once, so the copy of a batch a live worker finishes first is dropped as done.
    """
    batches = store.overdue(job_id, math.inf, queue_grace=0)  # overdue once any time passes: all in flight
    for batch_id in batches:
        store.rearm(job_id, batch_id, now)
        send(job_id, batch_id)
    return batches


def _clean_up(client: redis.Redis, ttl_seconds: int) -> None:
    """The run's Dramatiq queue goes now; every key under its prefix expires with the job's state at the latest."""
    for pattern in keys.dramatiq_queue_patterns(keys.queue()):
        doomed = list(client.scan_iter(match=pattern, count=1000))
        if doomed:
            client.delete(*doomed)
    for key in client.scan_iter(match=keys.everything(), count=1000):
        client.expire(key, max(1, ttl_seconds), lt=True)


@contextmanager
def _sigterm_exits() -> Iterator[None]:
    """SIGTERM ends the run through its clean-up (the workers, in process groups of their own, are stopped)."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set handlers; a caller on another one handles its own signals
        return
    before = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before if before is not None else signal.SIG_DFL)


def _exit_on_sigterm(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the block (this process's keys and its workers read them), then restore."""
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
