"""A real Prometheus for the metrics tests: scrape fixed targets every second with the chart's rules; query it."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from datetime import datetime
from pathlib import Path

import yaml

from chart.promql import substitute
from chart.tools import REPO, require_tool
from harness.ports import free_port
from harness.process import ManagedProcess

DASHBOARDS = sorted((REPO / "dashboards").glob("*.json"))
#: Queries whose empty answer is their meaning on a healthy run: nothing errored, retried or was dead-lettered.
EMPTY_MEANS_HEALTHY = (
    "dramatiq_message_errors_total",
    "dramatiq_message_retries_total",
    "dramatiq_message_rejects_total",
    "phashfleet_reconcile_errors_total",
)
RATE_INTERVAL = "1m"


class Prometheus(ManagedProcess):
    """prometheus scraping fixed loopback targets every second, with the chart's alert rules loaded."""

    def __init__(
        self, workdir: Path, targets: dict[str, str], rules: dict, scrape: dict[str, dict[str, object]] | None = None
    ) -> None:
        """Scrape each {job name: host:port} of `targets`; `scrape` adds or replaces keys of a job's scrape config."""
        self.port = free_port()
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "rules.yaml").write_text(yaml.safe_dump(rules))
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
            "rule_files": [str(workdir / "rules.yaml")],
            # No honor_labels, as the chart's monitors: a fleet label named `job` would become exported_job.
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": [target]}], **(scrape or {}).get(job, {})}
                for job, target in targets.items()
            ],
        }
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        super().__init__(
            "prometheus",
            [
                require_tool("prometheus"),
                f"--config.file={workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            workdir / "prometheus.log",
        )

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


def value(prom: Prometheus, query: str) -> float | None:
    """The single value of an instant query, or None when it has no result."""
    result = prom.api("query", query=query)["result"]
    return float(result[0]["value"][1]) if result else None


def epoch(stamp: str) -> float:
    """Seconds since the epoch of Prometheus' RFC 3339 timestamps (nanoseconds cut to micro)."""
    head, _, frac = stamp.rstrip("Z").partition(".")
    return datetime.fromisoformat(f"{head}.{(frac + '000000')[:6]}+00:00").timestamp()


def dashboard_queries(namespace: str, phashjob: str) -> list[tuple[str, str, str]]:
    """(dashboard, panel title, PromQL) for every query of every dashboard, variables filled in."""
    out = []
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel["targets"]:
                expr = target["expr"].replace("$__rate_interval", RATE_INTERVAL)
                expr = substitute(expr.replace("$namespace", namespace).replace("$phashjob", phashjob))
                out.append((path.name, panel["title"], expr))
    return out
