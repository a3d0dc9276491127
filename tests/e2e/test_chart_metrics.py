"""A real Prometheus scrapes the chart's operator and worker during a job: every dashboard query returns data,
every alert rule evaluates cleanly and stays quiet on a healthy fleet."""

from __future__ import annotations

import json
import time
from datetime import datetime
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from chart.e2e import PREFIX, install_apis, install_fleet, run_job
from chart.promql import substitute
from chart.tools import REPO, require_tool
from harness.ports import free_port
from harness.process import ManagedProcess
from harness.wait import wait_for

DASHBOARDS = sorted((REPO / "dashboards").glob("*.json"))
#: Queries whose empty answer is their meaning on a healthy run: nothing errored, retried or was dead-lettered.
EMPTY_MEANS_HEALTHY = ("dramatiq_message_errors_total", "dramatiq_message_retries_total",
                       "dramatiq_message_rejects_total", "phashfleet_reconcile_errors_total")
RATE_INTERVAL = "1m"


@pytest.fixture(scope="module")
def apis(control_plane):
    """The control plane serving the stand-in monitoring/KEDA APIs and kopf's peering CRDs."""
    return install_apis(control_plane)


class Prometheus(ManagedProcess):
    """prometheus scraping fixed loopback targets every second, with the chart's alert rules loaded."""

    def __init__(self, workdir: Path, targets: dict[str, str], rules: dict) -> None:
        self.port = free_port()
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "rules.yaml").write_text(yaml.safe_dump(rules))
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
            "rule_files": [str(workdir / "rules.yaml")],
            # honor_labels as the chart's ServiceMonitors: the fleet's `job`/`namespace` labels name PhashJobs.
            "scrape_configs": [{"job_name": job, "honor_labels": True, "static_configs": [{"targets": [target]}]}
                               for job, target in targets.items()],
        }
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        super().__init__("prometheus", [
            require_tool("prometheus"), f"--config.file={workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={workdir / 'data'}", f"--web.listen-address=127.0.0.1:{self.port}",
            "--log.level=warn",
        ], workdir / "prometheus.log")

    def api(self, path: str, **params: str) -> dict:
        """GET an /api/v1 endpoint and return its `data`."""
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=10) as resp:
            body = json.load(resp)
        assert body["status"] == "success", body
        return body["data"]

    def ready(self) -> bool:
        """True once Prometheus answers /-/ready."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2) as resp:
            return resp.status == 200


def _value(prom: Prometheus, query: str) -> float | None:
    """The single value of an instant query, or None when it has no result."""
    result = prom.api("query", query=query)["result"]
    return float(result[0]["value"][1]) if result else None


def _epoch(stamp: str) -> float:
    """Seconds since the epoch of Prometheus' RFC 3339 timestamps (nanoseconds cut to micro)."""
    head, _, frac = stamp.rstrip("Z").partition(".")
    return datetime.fromisoformat(f"{head}.{(frac + '000000')[:6]}+00:00").timestamp()


def _dashboard_queries(namespace: str, job: str) -> list[tuple[str, str, str]]:
    """(dashboard, panel title, PromQL) for every query of every dashboard, variables filled in."""
    out = []
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel["targets"]:
                expr = target["expr"].replace("$__rate_interval", RATE_INTERVAL)
                expr = substitute(expr.replace("$namespace", namespace).replace("$job", job))
                out.append((path.name, panel["title"], expr))
    return out


@pytest.fixture
def own_redis(tmp_path):
    """A Redis of this test's own: alerts judge a fleet's whole state, so no other test's keys may be in it."""
    from harness.redis_server import RedisServer  # noqa: PLC0415

    server = RedisServer(tmp_path / "own-redis").start()
    yield server
    server.stop()


def test_every_panel_and_alert_sees_the_fleet(apis, namespace, own_redis, pod_runner, operator, tmp_path):
    cp = apis
    redis_server = own_redis
    worker_port = free_port()
    fleet = install_fleet(cp, namespace, redis_server, pod_runner, operator, tmp_path, photos=12, values={
        "autoscaling": {"minReplicas": 1, "maxReplicas": 1},
        "worker": {"extraArgs": ["--metrics-port", str(worker_port)]},
        "metrics": {"prometheusRule": {"enabled": True}},
    })
    rule = cp.get_json("prometheusrule", PREFIX, namespace=namespace)
    prom = Prometheus(tmp_path / "prometheus", {
        f"{PREFIX}-operator": f"127.0.0.1:{fleet['operator'].metrics_port}",
        f"{PREFIX}-worker": f"127.0.0.1:{worker_port}",
    }, rule["spec"])
    prom.start()
    try:
        wait_for(prom.ready, timeout=60, what="prometheus ready")
        wait_for(lambda: all(t["health"] == "up" for t in prom.api("targets")["activeTargets"])
                 and len(prom.api("targets")["activeTargets"]) == 2, timeout=60, what="both targets scraped")
        start = time.time()
        # Small batches spread the job over several scrapes, so rate() sees the counters grow.
        status = run_job(cp, fleet, batchSize=2)
        assert status["phase"] == "Succeeded", status
        # Wait until Prometheus holds the final state of both targets, and every rule was evaluated on it.
        files = fleet["truth"]["files"]
        wait_for(lambda: _value(prom, 'max(phashfleet_job_progress_ratio{job="photos"})') == 1.0
                 and _value(prom, f'sum(phashfleet_files_processed_total{{job="{namespace}.photos"}})') == files,
                 timeout=60, what="the operator's progress 1.0 and the workers' final counts scraped")
        # rate() needs two samples of a series: wait for a second scrape of the workers' final counts.
        wait_for(lambda: (_value(prom, f'min(count_over_time(phashfleet_files_processed_total'
                                       f'{{job="{namespace}.photos"}}[1m]))') or 0) >= 2,
                 timeout=60, what="two scrapes of the workers' counters")
        scraped = time.time()
        wait_for(lambda: all(_epoch(g["lastEvaluation"]) > scraped for g in prom.api("rules")["groups"]),
                 timeout=30, what="the alert rules evaluated on the final state")

        empty = []
        for dashboard, title, expr in _dashboard_queries(namespace, "photos"):
            data = prom.api("query_range", query=expr, start=str(start - 5), end=str(time.time()), step="1s")
            if not data["result"] and not any(name in expr for name in EMPTY_MEANS_HEALTHY):
                empty.append(f"{dashboard} / {title}: {expr}")
        assert empty == [], "panels with no data during a job:\n" + "\n".join(empty)

        for variable_query in ("phashfleet_job_progress_ratio",):
            labels = {(s["namespace"], s["job"]) for s in prom.api("series", **{"match[]": variable_query})}
            assert (namespace, "photos") in labels, "the job dashboard's namespace/job variables would be empty"

        groups = prom.api("rules")["groups"]
        rules = {r["name"]: r for g in groups for r in g["rules"]}
        assert set(rules) == {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]}
        for name, r in rules.items():
            assert r["health"] == "ok", f"{name}: {r.get('lastError')}"
        # Firing is what reaches Alertmanager. A ratio over a 10-minute window is briefly "pending" after a
        # job that lasted seconds (its counters were born mid-job); with `for: 10m` it never fires.
        firing = {name: r["state"] for name, r in rules.items() if r["state"] == "firing"}
        assert firing == {}, f"alerts firing on a healthy fleet: {firing}"
        pending = {name for name, r in rules.items() if r["state"] == "pending"}
        assert pending <= {"PhashFleetFailureRatioHigh"}, f"alerts pending on a healthy fleet: {pending}"
        redis_up = prom.api("query", query="max(phashfleet_redis_up)")["result"]
        assert redis_up and redis_up[0]["value"][1] == "1", (
            "phashfleet_redis_up is not 1 while the operator talks to Redis: the operator must set "
            "metrics.REDIS_UP after each Redis round trip, or PhashFleetRedisDown fires on a healthy fleet")
        assert rules["PhashFleetRedisDown"]["state"] == "inactive"
    finally:
        prom.stop()
