"""Start the operator: metrics server, Redis store, job engine, autoscaler thread, then kopf."""

from __future__ import annotations

import logging
import os
import threading

import kopf
from prometheus_client import start_http_server

from phashfleet import metrics
from phashfleet.actors import send_batch
from phashfleet.broker import make_broker
from phashfleet.store import RedisJobStore
from phashfleet_operator import handlers  # noqa: F401 - registers the kopf handlers
from phashfleet_operator.config import OperatorConfig
from phashfleet_operator.engine import JobEngine
from phashfleet_operator.kube import WorkerScale, load_config
from phashfleet_operator.runtime import RUNTIME

log = logging.getLogger("phashfleet.operator")


def _housekeeping(stop: threading.Event) -> None:
    """Every second: check Redis (the RedisDown alert's gauge) and, in operator mode, autoscale."""
    state: dict = {}
    while not stop.wait(1.0):
        try:
            metrics.REDIS_UP.set(1 if RUNTIME.store.client.ping() else 0)
        except Exception:  # noqa: BLE001 - any failure to reach Redis is "down"
            metrics.REDIS_UP.set(0)
            continue
        if RUNTIME.scale is None:
            continue
        try:
            handlers.autoscale_once(state)
        except Exception as exc:  # noqa: BLE001 - the next second tries again; errors are counted
            metrics.RECONCILE_ERRORS.labels("autoscale").inc()
            log.warning("autoscaler step failed: %s", exc)


def run(*, kubeconfig: str | None, namespace: str | None, metrics_port: int, health_port: int,
        peering: str | None, priority: int) -> None:
    """Run until stopped by a signal."""
    load_config(kubeconfig)
    config = OperatorConfig.from_env()
    broker = make_broker()
    store = RedisJobStore(broker.client)
    worker_ns = config.worker_namespace or namespace or os.environ.get("POD_NAMESPACE") or "default"
    # The fleet's size is read in every mode (the dispatcher plans for it); only the operator mode sets it.
    workers = WorkerScale(config.worker_deployment, worker_ns)
    scale = workers if config.autoscaling == "operator" else None
    RUNTIME.store, RUNTIME.config, RUNTIME.scale = store, config, scale
    RUNTIME.namespaced = namespace is not None
    RUNTIME.engine = JobEngine(store, lambda jid, bid: send_batch(broker, jid, bid), config, workers.fleet_size,
                               ready_workers=workers.ready)
    start_http_server(metrics_port)
    stop = threading.Event()
    threading.Thread(target=_housekeeping, args=(stop,), name="housekeeping", daemon=True).start()
    try:
        kopf.run(
            standalone=peering is None, peering_name=peering, priority=priority,
            namespaces=[namespace] if namespace else [], clusterwide=namespace is None,
            liveness_endpoint=f"http://0.0.0.0:{health_port}/healthz",
        )
    finally:
        stop.set()
