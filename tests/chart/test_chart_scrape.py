"""The chart's monitors as prometheus-operator runs them: a real Prometheus scrapes the fleet's real metrics."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import start_http_server

from chart.prometheus import Prometheus
from chart.render import everything_on, render
from harness.listers import hand_out_files
from harness.operator_proc import phashfleet_argv
from harness.ports import free_port
from harness.process import ManagedProcess
from harness.synthetic import photo_like
from harness.wait import wait_for
from phashfleet import metrics
from phashfleet.job.spec import parse_spec
from phashfleet.state.redis_store import RedisJobStore
from phashfleet.worker.actor import send_batch
from phashfleet.worker.broker import make_broker, redis_client

#: The pods' namespace; the PhashJob lives in another one (an operator with clusterWide or watchNamespace).
RELEASE_NAMESPACE, JOB_NAMESPACE, JOB = "phash", "media", "relabel-check"
#: The PhashJob the worker hashes: a name with dots (a DNS subdomain may have them), so the job id
#: "<namespace>.<name>.<uid>" is split at its first and last dot.
WORKER_JOB = "holiday.2026"


def _snake(key: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in key)


def monitor_relabelings(kind: str = "ServiceMonitor", component: str = "operator") -> list[dict[str, object]]:
    """A rendered monitor's metricRelabelings, spelt as Prometheus' metric_relabel_configs."""
    values = everything_on() if kind == "ServiceMonitor" else {"metrics": {"podMonitor": {"enabled": True}}}
    (monitor,) = [m for m in render(values).of(kind) if m["metadata"]["name"].endswith(f"-{component}")]
    (endpoint,) = monitor["spec"].get("endpoints") or monitor["spec"]["podMetricsEndpoints"]
    return [{_snake(k): v for k, v in rule.items()} for rule in endpoint["metricRelabelings"]]


@pytest.fixture
def operator_metrics() -> Iterator[str]:
    """The operator's real metric definitions, one PhashJob's series set, served on a loopback port."""
    metrics.JOB_PROGRESS.labels(JOB_NAMESPACE, JOB).set(0.5)
    metrics.QUEUE_BACKLOG.labels("relabel-check-queue").set(3)
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1")
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        metrics.JOB_PROGRESS.remove(JOB_NAMESPACE, JOB)
        metrics.QUEUE_BACKLOG.remove("relabel-check-queue")


def test_a_phashjob_keeps_its_namespace_and_the_scrape_its_job(operator_metrics, tmp_path):
    """Scraped like a monitor (a `namespace` target label, no honor_labels), with and without the chart's
    metricRelabelings: with them the series carries the PhashJob's namespace and name and the scrape's
    own `job`; without them the PhashJob's namespace would be hidden in exported_namespace."""
    as_monitor = {"static_configs": [{"targets": [operator_metrics], "labels": {"namespace": RELEASE_NAMESPACE}}]}
    prom = Prometheus(
        tmp_path / "prometheus",
        {"chart": operator_metrics, "bare": operator_metrics},
        {"groups": []},
        scrape={"chart": {**as_monitor, "metric_relabel_configs": monitor_relabelings()}, "bare": as_monitor},
    )
    prom.start()
    try:
        wait_for(prom.ready, timeout=60, what="prometheus ready")

        def series(job: str, metric: str) -> list[dict[str, str]]:
            return [r["metric"] for r in prom.api("query", query=f'{metric}{{job="{job}"}}')["result"]]

        wait_for(
            lambda: (
                series("chart", "phashfleet_job_progress_ratio") and series("bare", "phashfleet_job_progress_ratio")
            ),
            timeout=60,
            what="both scrapes of the operator's metrics",
        )
        (progress,) = series("chart", "phashfleet_job_progress_ratio")
        assert progress["namespace"] == JOB_NAMESPACE and progress["phashjob"] == JOB, progress
        assert "exported_namespace" not in progress and not any(k.startswith("exported_") for k in progress)
        (backlog,) = series("chart", "phashfleet_queue_backlog")
        assert backlog["namespace"] == RELEASE_NAMESPACE, "a series without the fleet's namespace keeps the pod's"
        (bare,) = series("bare", "phashfleet_job_progress_ratio")
        assert (bare["namespace"], bare["exported_namespace"]) == (RELEASE_NAMESPACE, JOB_NAMESPACE)
    finally:
        prom.stop()


@pytest.fixture
def worker_metrics(redis_env, tmp_path) -> Iterator[str]:
    """A real `phashfleet worker` that hashed one PhashJob's batch (two photos, one corrupt file): its /metrics."""
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(2):
        photo_like(64, 48, seed=i).save(photos / f"p{i}.jpg")
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    files = sorted(str(p) for p in photos.iterdir())
    client = redis_client(redis_env["PHASHFLEET_REDIS_URL"], redis_env["PHASHFLEET_REDIS_PASSWORD"])
    store = RedisJobStore(client)
    job_id = f"{JOB_NAMESPACE}.{WORKER_JOB}.0a1b2c3d"
    store.create(job_id, parse_spec({"source": {"uri": str(photos)}}).hash_settings(), len(files))
    assert hand_out_files(store, job_id, 0, files, time.time(), listing_done=True)
    port = free_port()
    env = {
        **os.environ,
        **redis_env,
        "PHASHFLEET_ALLOWED_ROOTS": str(photos),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom"),
    }
    worker = ManagedProcess(
        "worker", phashfleet_argv("worker", "--metrics-port", str(port)), Path(tmp_path / "worker.log"), env=env
    )
    worker.start()
    try:
        send_batch(make_broker(client), job_id, 0)
        wait_for(lambda: store.snapshot(job_id).finished, timeout=60, interval=0.2, what="the worker's batch done")
        yield f"127.0.0.1:{port}"
    finally:
        worker.kill()


def test_a_workers_series_carry_the_phashjob_namespace_and_name(worker_metrics, tmp_path):
    """The workers' per-job series, scraped like the worker PodMonitor (a `namespace` target label, its
    metricRelabelings), carry the PhashJob's `namespace` and its name in `phashjob`, as the operator's do."""
    as_monitor = {"static_configs": [{"targets": [worker_metrics], "labels": {"namespace": RELEASE_NAMESPACE}}]}
    prom = Prometheus(
        tmp_path / "prometheus",
        {"chart": worker_metrics, "bare": worker_metrics},
        {"groups": []},
        scrape={
            "chart": {**as_monitor, "metric_relabel_configs": monitor_relabelings("PodMonitor", "worker")},
            "bare": as_monitor,
        },
    )
    prom.start()
    try:
        wait_for(prom.ready, timeout=60, what="prometheus ready")
        per_job = ("phashfleet_files_processed_total", "phashfleet_file_failures_total", "phashfleet_bytes_read_total")

        def series(job: str, metric: str) -> list[dict[str, str]]:
            return [r["metric"] for r in prom.api("query", query=f'{metric}{{job="{job}"}}')["result"]]

        wait_for(
            lambda: all(series(job, metric) for job in ("chart", "bare") for metric in per_job),
            timeout=60,
            what="both scrapes of the worker's per-job series",
        )
        for metric in per_job:
            for labels in series("chart", metric):
                assert (labels.get("namespace"), labels.get("phashjob")) == (JOB_NAMESPACE, WORKER_JOB), labels
                assert not any(k.startswith("exported_") for k in labels), labels
            for labels in series("bare", metric):
                assert (labels["namespace"], labels.get("exported_namespace")) == (RELEASE_NAMESPACE, JOB_NAMESPACE)
        results = {labels["result"] for labels in series("chart", "phashfleet_files_processed_total")}
        assert results == {"ok", "failed", "skipped"}
    finally:
        prom.stop()
