"""Start the operator: metrics server, Redis store, job engine, autoscaler, then kopf with them as its memo."""

from __future__ import annotations

import logging
import os
import threading

import kopf
from kubernetes.config import ConfigException
from prometheus_client import start_http_server

from phashfleet import metrics
from phashfleet.state.redis_store import RedisJobStore
from phashfleet.worker.actor import send_batch, send_collect, send_list
from phashfleet.worker.broker import RedisNotConfigured, make_broker
from phashfleet_operator import handlers, preflight  # noqa: F401 - handlers: imported to register the kopf handlers
from phashfleet_operator.autoscaler import Autoscaler, Leadership, operator_identity
from phashfleet_operator.config import OperatorConfig
from phashfleet_operator.engine import JobEngine
from phashfleet_operator.kube import WorkerScale, load_config, read_peers
from phashfleet_operator.limits import NamespaceLimits
from phashfleet_operator.runtime import Runtime

log = logging.getLogger("phashfleet.operator")


class _QuietTimers(logging.Filter):
    """kopf says "Timer 'tick' succeeded." at INFO every second for every job: that is debug detail here."""

    def filter(self, record: logging.LogRecord) -> bool:
        if (
            record.levelno == logging.INFO
            and str(record.msg).startswith("Timer ")
            and str(record.msg).endswith(" succeeded.")
        ):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger().isEnabledFor(logging.DEBUG)
        return True


def _housekeeping(stop: threading.Event, runtime: Runtime, redis_up: bool) -> None:
    """Every second: check Redis (the RedisDown alert's gauge, and a log line when it comes or goes) and,
    in operator mode, take an autoscaler step (which does nothing outside the peering leader)."""
    watch = preflight.RedisWatch(runtime.redis, up=redis_up)
    while not stop.wait(1.0):
        up = watch.check()
        metrics.REDIS_UP.set(1 if up else 0)
        if not up or runtime.autoscaler is None:
            continue
        try:
            runtime.autoscaler.step()
        except Exception as exc:  # noqa: BLE001 - the next second tries again; errors are counted
            metrics.RECONCILE_ERRORS.labels("autoscale").inc()
            log.warning("autoscaler step failed: %s", exc)


def run(
    *,
    kubeconfig: str | None,
    namespace: str | None,
    metrics_port: int,
    health_port: int,
    peering: str | None,
    priority: int,
) -> None:
    """Run until stopped by a signal; a configuration that cannot work exits 1 with one log line saying why."""
    try:
        load_config(kubeconfig)
        config = OperatorConfig.from_env()
        broker = make_broker()
    except (RedisNotConfigured, ConfigException, ValueError) as exc:
        log.critical("cannot start the operator: %s", exc)
        raise SystemExit(1) from None
    logging.getLogger("kopf.objects").addFilter(_QuietTimers())
    # Every probe of /healthz (the kubelet's, every few seconds) is an aiohttp access line: debug detail.
    if not logging.getLogger().isEnabledFor(logging.DEBUG):
        logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    store = RedisJobStore(broker.client)
    worker_ns = config.worker_namespace or namespace or os.environ.get("POD_NAMESPACE") or "default"
    # The fleet's size is read in every mode (the dispatcher plans for it); only the operator mode sets it.
    workers = WorkerScale(config.worker_deployment, worker_ns)
    engine = JobEngine(
        store,
        lambda jid, bid: send_batch(broker, jid, bid),
        config,
        workers.fleet_size,
        ready_workers=workers.ready,
        send_collect=lambda jid, plan: send_collect(broker, jid, plan),
        send_list=lambda jid, shard, plan, delay: send_list(broker, jid, shard, plan, delay=delay),
    )
    identity = operator_identity()
    leadership = Leadership(
        identity, priority, read_peers=(lambda: read_peers(peering, namespace)) if peering is not None else None
    )
    autoscaler = (
        Autoscaler(workers, store, config, leadership, work_left=engine.backlog)
        if config.autoscaling == "operator"
        else None
    )
    limits = NamespaceLimits(config.max_running_jobs_per_namespace)
    runtime = Runtime(store, engine, config, broker.client, autoscaler, limits, namespaced=namespace is not None)
    start_http_server(metrics_port)
    redis_up = preflight.warn_at_startup(config, workers, store.client)
    stop = threading.Event()
    threading.Thread(target=_housekeeping, args=(stop, runtime, redis_up), name="housekeeping", daemon=True).start()
    try:
        kopf.run(
            memo=runtime,
            identity=identity,  # type: ignore[arg-type]  # kopf's Identity is a NewType of str
            standalone=peering is None,
            peering_name=peering,
            priority=priority,
            namespaces=[namespace] if namespace else [],
            clusterwide=namespace is None,
            liveness_endpoint=f"http://0.0.0.0:{health_port}/healthz",
        )
    finally:
        stop.set()
