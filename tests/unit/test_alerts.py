"""The chart's alerts: promtool accepts them, every alert has firing and quiet unit tests, and they pass."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from chart.promql import metric_problems
from chart.render import render
from chart.tools import require_tool

ROOT = Path(__file__).resolve().parents[2]
TEST_FILES = sorted((ROOT / "tests" / "alerts").glob("*.test.yaml"))
EXPECTED_ALERTS = {
    "PhashFleetBacklogGrowingAtMaxWorkers",
    "PhashFleetJobStalled",
    "PhashFleetFailureRatioHigh",
    "PhashFleetOperatorAbsent",
    "PhashFleetReconcileErrors",
    "PhashFleetRedisDown",
}


@pytest.fixture(scope="module")
def rule_groups() -> dict:
    """The rendered PrometheusRule's spec (release "rel", namespace "phash", default thresholds)."""
    rendered = render({"metrics": {"prometheusRule": {"enabled": True, "additionalAlertLabels": {}}}})
    (rule,) = rendered.of("PrometheusRule")
    return rule["spec"]


def _rules(groups: dict) -> list[dict]:
    return [r for g in groups["groups"] for r in g["rules"]]


def test_the_six_alerts_are_there(rule_groups):
    assert {r["alert"] for r in _rules(rule_groups)} == EXPECTED_ALERTS
    for r in _rules(rule_groups):
        assert r["labels"]["severity"] in ("warning", "critical")
        assert r["annotations"]["summary"] and r["annotations"]["description"]


def test_alerts_use_known_metrics(rule_groups):
    """Every alert reads metrics from phashfleet.metrics (or `up`) with labels they really have."""
    assert [p for r in _rules(rule_groups) for p in metric_problems(r["expr"])] == []


def test_promtool_check_and_unit_tests(rule_groups, tmp_path):
    """`promtool check rules` on the rendered rules, then `promtool test rules` on tests/alerts/*.test.yaml."""
    promtool = require_tool("promtool")
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rule_groups))
    check = subprocess.run(
        [promtool, "check", "rules", str(tmp_path / "rules.yaml")], capture_output=True, text=True, timeout=60
    )
    assert check.returncode == 0 and f"SUCCESS: {len(EXPECTED_ALERTS)} rules found" in check.stdout, (
        check.stdout + check.stderr
    )
    assert TEST_FILES, "no promtool test files in tests/alerts"
    for test_file in TEST_FILES:
        shutil.copy(test_file, tmp_path / test_file.name)
    result = subprocess.run(
        [promtool, "test", "rules", *(f.name for f in TEST_FILES)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_firing_and_a_quiet_case():
    """The unit tests cover each alert both ways, so none passes by never firing (or always firing)."""
    fires, quiet = set(), set()
    for test_file in TEST_FILES:
        for case in yaml.safe_load(test_file.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (fires if check.get("exp_alerts") else quiet).add(check["alertname"])
    assert fires == EXPECTED_ALERTS
    assert quiet == EXPECTED_ALERTS


def test_broken_expectations_fail(rule_groups, tmp_path):
    """promtool test rules can fail: change an expected Redis annotation and it must."""
    promtool = require_tool("promtool")
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rule_groups))
    text = TEST_FILES[0].read_text().replace("summary: The operator cannot reach Redis", "summary: wrong")
    (tmp_path / "broken.test.yaml").write_text(text)
    result = subprocess.run(
        [promtool, "test", "rules", "broken.test.yaml"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0


def test_thresholds_follow_values():
    """maxReplicas, jobStalledMinutes, failureRatio and extra alert labels reach the rules."""
    rendered = render(
        {
            "autoscaling": {"maxReplicas": 33},
            "metrics": {
                "prometheusRule": {
                    "enabled": True,
                    "jobStalledMinutes": 45,
                    "failureRatio": 0.25,
                    "additionalAlertLabels": {"team": "media"},
                }
            },
        }
    )
    rules = {r["alert"]: r for r in _rules(rendered.of("PrometheusRule")[0]["spec"])}
    assert ">= 33" in rules["PhashFleetBacklogGrowingAtMaxWorkers"]["expr"]
    assert "[45m]" in rules["PhashFleetJobStalled"]["expr"] and "offset 45m" in rules["PhashFleetJobStalled"]["expr"]
    assert "> 0.25" in rules["PhashFleetFailureRatioHigh"]["expr"]
    assert all(r["labels"]["team"] == "media" for r in rules.values())
