"""Checks of PromQL written for dashboards and alerts: known metric names and labels, and promtool's parser."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml
from prometheus_client import Counter, Gauge, Histogram, Summary

from chart.tools import require_tool
from phashfleet import metrics

#: Label names every scraped series may carry besides its own (set by the scrape). Not `job`: a selector on the
#: scrape job would not name a PhashJob, and the fleet's own metrics never carry one.
TARGET_LABELS = {"instance", "pod", "service", "container", "endpoint"}
#: Grafana's template variables, replaced by sample values before promtool parses an expression.
GRAFANA_VARS = {
    "$__rate_interval": "5m",
    "$__interval": "1m",
    "$__range": "1h",
    "${datasource}": "prom",
    "$namespace": "media",
    "$phashjob": "holiday",
}


def phashfleet_series() -> dict[str, set[str]]:
    """{exposed series name: label names} for every metric in phashfleet.metrics."""
    out: dict[str, set[str]] = {}
    for value in vars(metrics).values():
        if not isinstance(value, (Counter, Gauge, Histogram, Summary)):
            continue
        name, labels = value._name, set(value._labelnames)
        if isinstance(value, Counter):
            out[f"{name}_total"] = labels
        elif isinstance(value, Histogram):
            for suffix in ("_bucket", "_sum", "_count"):
                out[name + suffix] = labels | ({"le"} if suffix == "_bucket" else set())
        elif isinstance(value, Summary):
            for suffix in ("_sum", "_count"):
                out[name + suffix] = labels
        else:
            out[name] = labels
    return out


def dramatiq_series() -> dict[str, set[str]]:
    """{series name: label names} of Dramatiq's Prometheus middleware, read from the installed dramatiq."""
    import dramatiq.middleware.prometheus as prom

    source = Path(prom.__file__).read_text()
    out = {}
    for name in set(re.findall(r'"(dramatiq_[a-z_]+)"', source)):
        if name.endswith("_milliseconds"):
            for suffix in ("_bucket", "_sum", "_count"):
                out[name + suffix] = {"queue_name", "actor_name"} | ({"le"} if suffix == "_bucket" else set())
        else:
            out[name] = {"queue_name", "actor_name"}
    return out


KNOWN = {**phashfleet_series(), **dramatiq_series(), "up": {"job", "instance", "namespace"}}
_METRIC = re.compile(r"\b((?:phashfleet|dramatiq)_[a-zA-Z0-9_]+|up)\b\s*(\{[^}]*\})?")
_MATCHER = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*"')
_GROUPING = re.compile(r"\b(?:by|on|without|ignoring)\s*\(([^)]*)\)")


def metric_problems(expr: str) -> list[str]:
    """What is wrong with the metric names and label names an expression uses (empty when nothing)."""
    problems = []
    used = _METRIC.findall(expr)
    if not used:
        problems.append(f"uses no phashfleet_/dramatiq_ metric: {expr}")
    labels_in_expr: set[str] = set()
    for name, selector in used:
        if name not in KNOWN:
            problems.append(f"unknown metric {name!r}")
            continue
        labels_in_expr |= KNOWN[name]
        for label in _MATCHER.findall(selector or ""):
            if label not in KNOWN[name] and label not in TARGET_LABELS:
                problems.append(f"{name} has no label {label!r}")
    for group in _GROUPING.findall(expr):
        for label in filter(None, (g.strip() for g in group.split(","))):
            if label not in labels_in_expr | {"le"}:
                problems.append(f"grouping label {label!r} is on none of the metrics of: {expr}")
    return problems


def substitute(expr: str) -> str:
    """An expression with Grafana's variables replaced, ready for Prometheus' parser."""
    for var, value in GRAFANA_VARS.items():
        expr = expr.replace(var, value)
    assert "$" not in expr.replace("$value", "").replace("$labels", ""), f"unreplaced variable in {expr}"
    return expr


def promtool_check_exprs(exprs: list[str], workdir: Path) -> None:
    """Parse every expression with promtool (as recording rules); fail naming promtool's complaint."""
    rules = {
        "groups": [
            {
                "name": "check",
                "rules": [{"record": f"check:expr_{i}", "expr": substitute(e)} for i, e in enumerate(exprs)],
            }
        ]
    }
    path = workdir / "exprs.rules.yaml"
    path.write_text(yaml.safe_dump(rules))
    proc = subprocess.run(
        [require_tool("promtool"), "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in proc.stdout + proc.stderr
