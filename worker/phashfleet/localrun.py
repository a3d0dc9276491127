"""Run one PhashJob on this machine: the same dispatch and status logic as the operator, no cluster.

Embedded mode keeps state in memory and hashes batches in a process pool (every core); with a
Redis URL it uses the Redis store and real `phashfleet worker` processes, as a cluster would.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from phashfleet.dispatch import ListingCursor, count_files, dispatch_tick, job_window, queue_grace_for
from phashfleet.finish import finish_job
from phashfleet.jobspec import JobSpec
from phashfleet.status import RateMeter, job_outcome, job_status, now_iso

Progress = Callable[[int, int, float], None]  # (done, total, rate)

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


def _hash_batch(files: list[str], settings: dict[str, Any], roots: tuple[str, ...]) -> list[dict]:
    from phashfleet.hashing import Settings, hash_many  # noqa: PLC0415 - imported in the pool process

    return list(hash_many(files, Settings(algorithm=settings["algorithm"], hash_size=settings["hash_size"],
                                          exact=settings["exact"], timeout_seconds=settings["timeout_seconds"],
                                          allowed_roots=roots)))


def _final_status(store, job_id: str, spec: JobSpec, roots: tuple[str, ...], started: str, rate: float,
                  output_roots) -> dict[str, Any]:
    snap = store.snapshot(job_id)
    phase, reason, message = job_outcome(snap, spec.suspend)
    extra = {"startTime": started}
    if snap.finished:
        extra["completionTime"] = now_iso()
        extra.update(finish_job(store, job_id, spec, output_roots))
    return job_status(snap, phase=phase, reason=reason, message=message, rate=rate,
                      failures=store.failures(job_id), extra=extra)


def run_embedded(spec: JobSpec, job_id: str, roots: tuple[str, ...], *, jobs: int | None = None,
                 progress: Progress | None = None, output_roots=None) -> RunResult:
    """Hash the job in a local process pool, with in-memory state; return the final status."""
    from phashfleet.memstore import MemoryJobStore  # noqa: PLC0415

    store = MemoryJobStore()
    started = now_iso()
    store.create(job_id, spec.hash_settings(), count_files(spec, roots))
    cursor = ListingCursor(spec, roots)
    workers = jobs or os.cpu_count() or 1
    meter = RateMeter()
    futures: dict[Future, int] = {}
    with ProcessPoolExecutor(max_workers=workers) as pool:
        def send(jid: str, batch_id: int) -> None:
            files = store.start_batch(jid, batch_id, float("inf"))
            futures[pool.submit(_hash_batch, files, spec.hash_settings(), roots)] = batch_id

        while True:
            dispatch_tick(store, job_id, spec, cursor, send, now=time.time(), room=workers * 2 - len(futures),
                          window=workers * 2)
            if not futures:
                break
            done, _ = wait(futures, return_when=FIRST_COMPLETED)
            for future in done:
                store.record(job_id, futures.pop(future), future.result(), finish=True)
            snap = store.snapshot(job_id)
            if progress:
                progress(snap.done_files, snap.total, meter.update(snap.done_files))
    return RunResult(_final_status(store, job_id, spec, roots, started, meter.update(store.snapshot(job_id).done_files),
                                   output_roots))


def run_with_redis(spec: JobSpec, job_id: str, roots: tuple[str, ...], redis_url: str, *, jobs: int | None = None,
                   progress: Progress | None = None, output_roots=None, start_workers: bool = True) -> RunResult:
    """Hash the job with real worker processes on a Redis broker; return the final status.

    With `start_workers=False` no workers are started: ones already running on that Redis hash the job.
    """
    from phashfleet.actors import send_batch  # noqa: PLC0415
    from phashfleet.broker import make_broker, redis_client  # noqa: PLC0415
    from phashfleet.store import RedisJobStore  # noqa: PLC0415

    os.environ["PHASHFLEET_REDIS_URL"] = redis_url
    client = redis_client(redis_url)
    broker = make_broker(client)
    store = RedisJobStore(client)
    store.delete(job_id)
    started = now_iso()
    store.create(job_id, spec.hash_settings(), count_files(spec, roots))
    env = {**os.environ, "PHASHFLEET_ALLOWED_ROOTS": os.pathsep.join(roots)}
    workers = jobs or os.cpu_count() or 1
    proc = subprocess.Popen([sys.executable, "-m", "phashfleet.cli", "worker", "--processes", str(workers),
                             "--metrics-port", "0"], env=env) if start_workers else None
    cursor = ListingCursor(spec, roots)
    meter = RateMeter()
    window = job_window(workers)
    try:
        while True:
            dispatch_tick(store, job_id, spec, cursor, lambda j, b: send_batch(broker, j, b), now=time.time(),
                          room=window, window=window, queue_grace=queue_grace_for(store.queue_length()),
                          workers=workers)
            snap = store.snapshot(job_id)
            if progress:
                progress(snap.done_files, snap.total, meter.update(snap.done_files))
            if snap.finished or spec.suspend:  # a suspended job hands nothing out: it would never finish
                break
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"worker processes exited with code {proc.returncode}")
            time.sleep(DRIVER_TICK)  # the hand-out and progress pace, not a wait for a condition
        return RunResult(_final_status(store, job_id, spec, roots, started, meter.update(snap.done_files),
                                       output_roots))
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=60)
        store.expire(job_id, spec.ttl_seconds)
