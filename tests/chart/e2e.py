"""Helpers of the chart's end-to-end tests: the real monitoring/KEDA CRDs, and helm 3 or 4 against a cluster."""

from __future__ import annotations

import json
import subprocess

from chart.render import CHART
from chart.tools import require_tool
from harness import tools

RELEASE = "fleet"
PREFIX = f"{RELEASE}-phash-fleet"

#: The CRDs of prometheus-operator and KEDA the chart's optional objects need, the real ones at the versions
#: pinned in harness.tools (schemas included, so the apiserver validates those objects).
REAL_CRDS = (
    "servicemonitors.monitoring.coreos.com",
    "podmonitors.monitoring.coreos.com",
    "prometheusrules.monitoring.coreos.com",
    "scaledobjects.keda.sh",
    "triggerauthentications.keda.sh",
)


def install_apis(control_plane):
    """Establish the real monitoring/KEDA CRDs and kopf's peering CRDs on the control plane; return it."""
    # Server-side apply: the real CRDs are too big for the last-applied-configuration annotation.
    for path in [*tools.crd_files(*REAL_CRDS), CHART / "crds" / "kopfpeerings.kopf.dev.yaml"]:
        control_plane.kubectl("apply", "--server-side", "-f", str(path))
    names = [*REAL_CRDS, "kopfpeerings.kopf.dev", "clusterkopfpeerings.kopf.dev"]
    control_plane.kubectl("wait", "--for=condition=Established", "--timeout=60s", *(f"crd/{n}" for n in names))
    return control_plane


def helm(
    control_plane,
    *args: str,
    values: dict | None = None,
    check: bool = True,
    binary: str = "helm",
    timeout: float = 300,
) -> subprocess.CompletedProcess:
    """Run helm (`helm` is Helm 3, `helm4` Helm 4) against a control plane, values as JSON on stdin."""
    cmd = [require_tool(binary), "--kubeconfig", str(control_plane.kubeconfig), *args]
    if values is not None:
        cmd += ["-f", "-"]
    proc = subprocess.run(
        cmd, input=json.dumps(values) if values is not None else None, capture_output=True, text=True, timeout=timeout
    )
    if check:
        assert proc.returncode == 0, f"helm {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc
