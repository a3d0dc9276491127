"""`phashfleet worker`: run Dramatiq worker processes that hash batches from the Redis broker."""

from __future__ import annotations

import os
import signal
import sys
import tempfile

import click

from phashfleet.cli.options import log_options
from phashfleet.state import keys
from phashfleet.worker.broker import REDIS_URL_ENV, RedisAuthFailed, check_credentials, redis_client

#: Messages each worker process holds beyond one per thread: the next batch, ready when one ends.
PREFETCH_SPARE = 1
#: Longest pause (ms) of an idle Dramatiq consumer between looks at the queue.
CONSUMER_POLL_MS = 100


@click.command("worker")
@click.option(
    "--processes",
    type=click.IntRange(1),
    default=1,
    show_default=True,
    help="Worker processes (in Kubernetes keep 1 and scale replicas).",
)
@click.option(
    "--threads",
    type=click.IntRange(1),
    default=1,
    show_default=True,
    help="Threads per process; hashing is CPU-bound, so 1 is usually best.",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    default=9191,
    show_default=True,
    help="Port for /metrics (Dramatiq's and phashfleet_ metrics of every process).",
)
@click.option(
    "--shutdown-timeout",
    type=click.FloatRange(0),
    envvar="PHASHFLEET_SHUTDOWN_TIMEOUT",
    default=30.0,
    show_default=True,
    help="Seconds SIGTERM waits for in-flight batches before handing them back.",
)
@log_options
def cli(processes: int, threads: int, metrics_port: int, shutdown_timeout: float) -> None:
    """Run workers on the Redis broker named by PHASHFLEET_REDIS_URL (+ PHASHFLEET_REDIS_PASSWORD)."""
    if not os.environ.get(REDIS_URL_ENV):
        raise click.UsageError(f"{REDIS_URL_ENV} is not set: the worker needs a Redis broker")
    try:
        # A wrong password never heals: exit (the kubelet shows CrashLoopBackOff) rather than let
        # Dramatiq's consumers log a connection error every few seconds for good.
        check_credentials(redis_client())
    except RedisAuthFailed as exc:
        raise click.ClickException(f"cannot start workers: {exc}") from None
    # Metrics of all processes meet in one multiprocess folder (an emptyDir in the chart); it must be
    # set before prometheus_client is first imported in the worker processes.
    prom_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or tempfile.mkdtemp(prefix="phashfleet-prom-")
    os.makedirs(prom_dir, exist_ok=True)
    os.environ.update(
        {
            "PROMETHEUS_MULTIPROC_DIR": prom_dir,
            "dramatiq_prom_db": prom_dir,
            "dramatiq_prom_port": str(metrics_port),
            "dramatiq_prom_host": "0.0.0.0",
            # Each thread has its next batch at hand when it finishes one, so the hashing
            # process never waits on Redis between batches. A killed worker's unstarted one comes
            # back by Dramatiq's heartbeat (or the dispatcher's resend), like its leased ones.
            "dramatiq_queue_prefetch": str(threads + PREFETCH_SPARE),
            # An idle consumer polls at most this often (ms); Dramatiq's default of 1 s let a
            # finished thread wait up to a second for the next message.
            "dramatiq_worker_timeout": str(CONSUMER_POLL_MS),
        }
    )
    argv = [
        sys.executable,
        "-m",
        "phashfleet.worker.main",
        "phashfleet.worker.app",
        "--skip-logging",
        "--queues",
        keys.queue(),
        "--processes",
        str(processes),
        "--threads",
        str(threads),
        "--worker-shutdown-timeout",
        str(int(shutdown_timeout * 1000)),
    ]
    # Hold SIGTERM/SIGINT until Dramatiq has its handlers in place (it unblocks them then): a pod stopped
    # while still starting shuts down gracefully instead of dying by the signal. The mask survives exec.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    os.execv(sys.executable, argv)
