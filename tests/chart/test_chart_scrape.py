"""The chart's monitors as prometheus-operator runs them: a real Prometheus scrapes the fleet's real metrics."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prometheus_client import start_http_server

from chart.prometheus import Prometheus
from chart.render import everything_on, render
from harness.ports import free_port
from harness.wait import wait_for
from phashfleet import metrics

#: The pods' namespace; the PhashJob lives in another one (an operator with clusterWide or watchNamespace).
RELEASE_NAMESPACE, JOB_NAMESPACE, JOB = "phash", "media", "relabel-check"


def _snake(key: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in key)


def monitor_relabelings() -> list[dict[str, object]]:
    """The rendered ServiceMonitor's metricRelabelings, spelt as Prometheus' metric_relabel_configs."""
    (endpoint,) = render(everything_on()).of("ServiceMonitor")[0]["spec"]["endpoints"]
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
