"""`helm lint --strict` passes for the default values and for the main profiles."""

from __future__ import annotations

import json
import subprocess

import pytest

from chart.render import CHART, EXTERNAL_REDIS, everything_on, helm_cmd, merge

# helm lint has no --api-versions, and it only logs a template's `fail`: so no keda profile here
# (the render matrix covers it), and the test also refuses any logged Fail.
PROFILES = {
    "defaults": {},
    "everything-on": merge(everything_on(), {"autoscaling": {"mode": "operator"}}),
    "external-redis-cluster-wide": merge(
        EXTERNAL_REDIS, {"operator": {"clusterWide": True}, "metrics": {"podMonitor": {"enabled": True}}}
    ),
    "fixed-size": {"autoscaling": {"mode": "none"}, "worker": {"replicas": 3}},
}


@pytest.mark.parametrize("name", PROFILES)
def test_helm_lint_strict(name, tmp_path):
    """helm lint --strict: no errors, no warnings, no validateValues failure."""
    values = tmp_path / "values.json"
    values.write_text(json.dumps(PROFILES[name]))
    proc = subprocess.run(
        helm_cmd("lint", "--strict", str(CHART), "-f", str(values)), capture_output=True, text=True, timeout=60
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "1 chart(s) linted, 0 chart(s) failed" in out
    for bad in ("[WARNING]", "[ERROR]", "Fail:"):
        assert bad not in out, out


def test_helm_lint_reports_a_validate_values_failure(tmp_path):
    """The Fail check above can fail: a contradiction shows up in lint's log."""
    proc = subprocess.run(
        helm_cmd("lint", str(CHART), "--set", "redis.enabled=false"), capture_output=True, text=True, timeout=60
    )
    assert "redis.url is required" in proc.stdout + proc.stderr
