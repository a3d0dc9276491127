"""Generate the Grafana dashboards (fleet overview, per-job) as JSON: `python dashboards/generate.py`.

Writes dashboards/*.json and the same files into charts/phash-fleet/dashboards/, which the chart
ships as sidecar ConfigMaps. tests/unit/test_dashboards.py fails when the checked-in files differ
from what this script makes, so edit this file, never the JSON.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT_DIRS = (ROOT / "dashboards", ROOT / "charts" / "phash-fleet" / "dashboards")
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
RATE = "$__rate_interval"


def target(expr: str, legend: str = "", ref: str = "A", instant: bool = False) -> dict:
    """One PromQL query of a panel."""
    return {
        "datasource": DATASOURCE,
        "expr": expr,
        "legendFormat": legend or "__auto",
        "refId": ref,
        "range": not instant,
        "instant": instant,
    }


def _targets(queries: list[tuple[str, str]], instant: bool = False) -> list[dict]:
    return [target(expr, legend, chr(ord("A") + i), instant) for i, (expr, legend) in enumerate(queries)]


class Layout:
    """Hands out panel ids and grid positions row by row (Grafana's grid is 24 units wide)."""

    def __init__(self) -> None:
        self.next_id = 1
        self.x = 0
        self.y = 0
        self.row_h = 0

    def place(self, w: int, h: int) -> tuple[int, dict]:
        """Return a fresh panel id and a gridPos, wrapping to a new row when the width runs out."""
        if self.x + w > 24:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        pos = {"x": self.x, "y": self.y, "w": w, "h": h}
        self.x += w
        self.row_h = max(self.row_h, h)
        panel_id = self.next_id
        self.next_id += 1
        return panel_id, pos


def stat(
    layout: Layout,
    title: str,
    expr: str,
    unit: str = "short",
    description: str = "",
    mappings: list | None = None,
    thresholds: list | None = None,
    w: int = 4,
) -> dict:
    """A single-number panel."""
    panel_id, pos = layout.place(w, 4)
    return {
        "id": panel_id,
        "type": "stat",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "gridPos": pos,
        "targets": _targets([(expr, title)], instant=True),
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "mappings": mappings or [],
                "thresholds": {"mode": "absolute", "steps": thresholds or [{"color": "green", "value": None}]},
            },
            "overrides": [],
        },
        "options": {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "value",
            "graphMode": "area",
            "textMode": "auto",
        },
    }


def timeseries(
    layout: Layout,
    title: str,
    queries: list[tuple[str, str]],
    unit: str = "short",
    description: str = "",
    w: int = 12,
    stack: bool = False,
) -> dict:
    """A graph panel with one line per query (and per label set)."""
    panel_id, pos = layout.place(w, 8)
    return {
        "id": panel_id,
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "gridPos": pos,
        "targets": _targets(queries),
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "custom": {
                    "drawStyle": "line",
                    "lineWidth": 1,
                    "fillOpacity": 10,
                    "showPoints": "never",
                    "stacking": {"mode": "normal" if stack else "none", "group": "A"},
                },
            },
            "overrides": [],
        },
        "options": {
            "legend": {"displayMode": "table", "placement": "bottom", "calcs": ["lastNotNull", "max"]},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
    }


def datasource_variable() -> dict:
    """The Prometheus data source picker every query uses."""
    return {
        "name": "datasource",
        "label": "Data source",
        "type": "datasource",
        "query": "prometheus",
        "current": {},
        "hide": 0,
        "refresh": 1,
        "options": [],
    }


def query_variable(name: str, label: str, query: str) -> dict:
    """A variable whose values come from label_values() of a metric."""
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DATASOURCE,
        "query": {"query": query, "refId": f"{name}-values"},
        "definition": query,
        "current": {},
        "hide": 0,
        "refresh": 2,
        "sort": 1,
        "multi": False,
        "includeAll": False,
        "options": [],
        "regex": "",
    }


def dashboard(uid: str, title: str, description: str, panels: list[dict], variables: list[dict]) -> dict:
    """The dashboard envelope Grafana imports (and the sidecar loads)."""
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["phash-fleet"],
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "refresh": "30s",
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": variables},
        "annotations": {"list": []},
        "links": [],
        "panels": panels,
    }


def quantiles(metric: str, by: str = "", scale: str = "") -> list[tuple[str, str]]:
    """p50/p90/p99 queries of a histogram."""
    group = f"le, {by}" if by else "le"
    legend_by = f" {{{{{by}}}}}" if by else ""
    return [
        (
            f"histogram_quantile({q}, sum by ({group}) (rate({metric}_bucket[{RATE}]))){scale}",
            f"p{int(q * 100)}{legend_by}",
        )
        for q in (0.5, 0.9, 0.99)
    ]


def fleet_overview() -> dict:
    """Throughput, backlog, workers desired vs current, latency percentiles, failures by reason."""
    lay = Layout()
    up_down = [
        {"type": "value", "options": {"0": {"text": "DOWN", "color": "red"}, "1": {"text": "UP", "color": "green"}}}
    ]
    panels = [
        stat(
            lay,
            "Files/s",
            f"sum(rate(phashfleet_files_processed_total[{RATE}]))",
            "ops",
            "Files hashed, failed or skipped per second, all jobs.",
        ),
        stat(lay, "Queue backlog", "sum(phashfleet_queue_backlog)", "short", "Messages waiting in the broker."),
        stat(
            lay,
            "Workers ready",
            "max(phashfleet_worker_replicas_current)",
            "short",
            "Worker replicas the Deployment reports ready.",
        ),
        stat(
            lay,
            "Workers wanted",
            "max(phashfleet_worker_replicas_desired)",
            "short",
            "Worker replicas the autoscaler asks for.",
        ),
        stat(lay, "Jobs running", 'sum(phashfleet_jobs{phase="Running"})', "short", "PhashJobs in phase Running."),
        stat(
            lay,
            "Redis",
            "max(phashfleet_redis_up)",
            "short",
            "Whether the operator reaches Redis.",
            mappings=up_down,
            thresholds=[{"color": "red", "value": None}, {"color": "green", "value": 1}],
        ),
        timeseries(
            lay,
            "Throughput by result",
            [(f"sum by (result) (rate(phashfleet_files_processed_total[{RATE}]))", "{{result}}")],
            "ops",
            "Files per second by result (ok, failed, skipped).",
            stack=True,
        ),
        timeseries(
            lay,
            "Backlog and in-flight batches",
            [
                ("sum by (queue) (phashfleet_queue_backlog)", "queued {{queue}}"),
                ("sum(phashfleet_inflight_batches)", "handed out, not done"),
                ("sum(phashfleet_worker_inflight_batches)", "being hashed"),
            ],
            "short",
            "Batches waiting in the broker, handed out by the operator, and being hashed by workers.",
        ),
        timeseries(
            lay,
            "Workers: wanted vs ready",
            [
                ("max(phashfleet_worker_replicas_desired)", "wanted"),
                ("max(phashfleet_worker_replicas_current)", "ready"),
            ],
            "short",
            "What the autoscaler asks for against what the Deployment has ready.",
        ),
        timeseries(
            lay,
            "Hash latency",
            quantiles("phashfleet_hash_duration_seconds"),
            "s",
            "Time to read, decode and hash one file: p50, p90, p99.",
        ),
        timeseries(
            lay,
            "Failures by reason",
            [(f"sum by (result, reason) (rate(phashfleet_file_failures_total[{RATE}]))", "{{result}}: {{reason}}")],
            "ops",
            "Failed and skipped files per second by reason code.",
            stack=True,
        ),
        timeseries(
            lay,
            "Bytes read",
            [(f"sum(rate(phashfleet_bytes_read_total[{RATE}]))", "read")],
            "Bps",
            "Source bytes workers read per second.",
        ),
        timeseries(
            lay,
            "Dramatiq messages",
            [
                (f"sum(rate(dramatiq_messages_total[{RATE}]))", "processed"),
                (f"sum(rate(dramatiq_message_errors_total[{RATE}]))", "errored"),
                (f"sum(rate(dramatiq_message_retries_total[{RATE}]))", "retried"),
                (f"sum(rate(dramatiq_message_rejects_total[{RATE}]))", "dead-lettered"),
            ],
            "ops",
            "Messages per second as Dramatiq's own middleware counts them.",
        ),
        timeseries(
            lay,
            "Dramatiq message duration",
            quantiles("dramatiq_message_duration_milliseconds", scale=" / 1000"),
            "s",
            "Time to process one batch message: p50, p90, p99.",
        ),
        timeseries(
            lay,
            "Reconcile errors",
            [(f"sum by (handler) (rate(phashfleet_reconcile_errors_total[{RATE}]))", "{{handler}}")],
            "ops",
            "Operator handler runs that raised, per second.",
        ),
        timeseries(
            lay,
            "Reconcile duration p99",
            [
                (
                    f"histogram_quantile(0.99, sum by (le, handler) (rate(phashfleet_reconcile_duration_seconds_bucket[{RATE}])))",
                    "{{handler}}",
                )
            ],
            "s",
            "Operator handler run time, p99.",
        ),
        timeseries(
            lay,
            "Jobs by phase",
            [("sum by (phase) (phashfleet_jobs)", "{{phase}}")],
            "short",
            "PhashJobs known to the operator, by phase.",
            w=24,
            stack=True,
        ),
    ]
    return dashboard(
        "phash-fleet-overview",
        "phash-fleet / Fleet overview",
        "Throughput, backlog, workers, latency and failures of the whole fleet.",
        panels,
        [datasource_variable()],
    )


def per_job() -> dict:
    """Progress, rate, ETA and failed/skipped files of one PhashJob (variables namespace and phashjob)."""
    lay = Layout()
    sel = 'namespace="$namespace", phashjob="$phashjob"'
    # Workers label their series with the job's "<namespace>.<name>"; the operator uses namespace + phashjob.
    wsel = 'phashjob="$namespace.$phashjob"'
    files = f"phashfleet_files_processed_total{{{wsel}}}"
    rate = f"sum(rate({files}[{RATE}]))"
    remaining = (
        f'max(phashfleet_job_files{{{sel}, state="total"}})'
        f' - sum(phashfleet_job_files{{{sel}, state=~"succeeded|failed|skipped"}})'
    )
    panels = [
        stat(
            lay,
            "Progress",
            f"max(phashfleet_job_progress_ratio{{{sel}}})",
            "percentunit",
            "Share of the job's files done.",
        ),
        stat(lay, "Rate", rate, "ops", "Files per second over the rate interval."),
        stat(lay, "ETA", f"({remaining}) / {rate}", "s", "Files left divided by the current rate."),
        stat(lay, "Succeeded", f'max(phashfleet_job_files{{{sel}, state="succeeded"}})', "short", "Files hashed."),
        stat(
            lay,
            "Failed",
            f'max(phashfleet_job_files{{{sel}, state="failed"}})',
            "short",
            "Unreadable, corrupt or timed out after retries.",
            thresholds=[{"color": "green", "value": None}, {"color": "red", "value": 1}],
        ),
        stat(
            lay,
            "Skipped",
            f'max(phashfleet_job_files{{{sel}, state="skipped"}})',
            "short",
            "Not an image.",
            thresholds=[{"color": "green", "value": None}, {"color": "orange", "value": 1}],
        ),
        timeseries(
            lay,
            "Progress",
            [(f"max(phashfleet_job_progress_ratio{{{sel}}})", "progress")],
            "percentunit",
            "Share of the job's files done over time.",
        ),
        timeseries(
            lay,
            "Rate by result",
            [(f"sum by (result) (rate({files}[{RATE}]))", "{{result}}")],
            "ops",
            "Files per second by result.",
            stack=True,
        ),
        timeseries(
            lay,
            "Files by state",
            [(f"max by (state) (phashfleet_job_files{{{sel}}})", "{{state}}")],
            "short",
            "Total, succeeded, failed and skipped counts as the operator last counted them.",
        ),
        timeseries(
            lay,
            "Failed and skipped by reason",
            [
                (
                    f"sum by (result, reason) (increase(phashfleet_file_failures_total{{{wsel}}}[{RATE}]))",
                    "{{result}}: {{reason}}",
                )
            ],
            "short",
            "Failed and skipped files per interval, by reason code.",
            stack=True,
        ),
        timeseries(
            lay,
            "In-flight batches",
            [(f"sum(phashfleet_inflight_batches{{{sel}}})", "handed out")],
            "short",
            "Batches of this job handed out and not yet done.",
        ),
        timeseries(
            lay,
            "Bytes read",
            [(f"sum(rate(phashfleet_bytes_read_total{{{wsel}}}[{RATE}]))", "read")],
            "Bps",
            "Source bytes of this job read per second.",
        ),
    ]
    variables = [
        datasource_variable(),
        query_variable("namespace", "Namespace", "label_values(phashfleet_job_progress_ratio, namespace)"),
        query_variable(
            "phashjob", "PhashJob", 'label_values(phashfleet_job_progress_ratio{namespace="$namespace"}, phashjob)'
        ),
    ]
    return dashboard(
        "phash-fleet-job",
        "phash-fleet / PhashJob",
        "Progress, rate, ETA and failures of one PhashJob.",
        panels,
        variables,
    )


DASHBOARDS = {"fleet-overview.json": fleet_overview, "phash-job.json": per_job}


def render() -> dict[str, str]:
    """Return {file name: JSON text} for every dashboard."""
    return {name: json.dumps(build(), indent=2, sort_keys=True) + "\n" for name, build in DASHBOARDS.items()}


def main(out_dirs: tuple[Path, ...] = OUT_DIRS) -> None:
    """Write every dashboard into each output folder."""
    for out in out_dirs:
        out.mkdir(parents=True, exist_ok=True)
        for name, text in render().items():
            (out / name).write_text(text)


if __name__ == "__main__":
    main(tuple(Path(p) for p in sys.argv[1:]) or OUT_DIRS)
