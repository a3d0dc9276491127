"""Fixtures of the tests on the real node: the node itself (once per session) and restricted namespaces."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from harness import tools
from harness.ci import missing
from harness.node import host
from harness.node.node import Node

TESTS = Path(__file__).resolve().parents[1]

NODE_TOOLS = (
    "kube-apiserver",
    "kubectl",
    "kubelet",
    "kube-scheduler",
    "kube-controller-manager",
    "kube-proxy",
    "coredns",
    "etcd",
)
NODE_COMMANDS = ("containerd", "ctr", "runc", "buildah", "debootstrap", "iptables")


@pytest.fixture(scope="session")
def node(tmp_path_factory):
    """A real single-node cluster for the session; afterwards the host must be exactly as before."""
    if os.geteuid() != 0:
        missing("the real node needs root")
    for name in NODE_TOOLS:
        try:
            tools.find(name)
        except (tools.ToolMissing, OSError) as exc:
            missing(f"{name}: {exc}")
    absent = [
        c
        for c in NODE_COMMANDS
        if not any(
            os.access(os.path.join(d, c), os.X_OK) for d in os.environ.get("PATH", "").split(":") + ["/usr/sbin"]
        )
    ]
    if absent:
        missing(f"Debian packages for the node ({', '.join(absent)}): scripts/test installs them")
    before = host.snapshot()
    state = tmp_path_factory.mktemp("node")
    # Started the way a person starts it (scripts/cluster runs this), so the CLI and its output are tested too.
    up = subprocess.run(
        [sys.executable, "-m", "harness.node", "up", "--state", str(state)],
        capture_output=True,
        text=True,
        timeout=1800,
        env={**os.environ, "PYTHONPATH": str(TESTS)},
    )
    if up.returncode != 0 and "already running" in up.stderr:
        missing(up.stderr.strip().splitlines()[-1])
    assert up.returncode == 0, f"the node did not come up:\n{up.stderr[-6000:]}"
    (state / "logs" / "up.log").write_text(up.stderr)  # the start-up's timed steps
    started = Node(state)
    started.up_output = up.stdout
    yield started
    down = subprocess.run(
        [sys.executable, "-m", "harness.node", "down", "--state", str(state), "--keep-logs"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(TESTS)},
    )
    assert down.returncode == 0, down.stderr
    after = host.snapshot()
    left = {key: (before[key], after[key]) for key in before if before[key] != after[key]}
    assert left == {}, f"the node left the host changed (before, after): {left}"


@pytest.fixture
def restricted_namespace(node, request) -> str:
    """A fresh namespace that enforces the `restricted` Pod Security Standard."""
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:30].strip("-")
    name = f"n-{slug}-{secrets.token_hex(3)}"
    node.plane.kubectl("create", "namespace", name)
    node.plane.kubectl(
        "label",
        "namespace",
        name,
        "pod-security.kubernetes.io/enforce=restricted",
        "pod-security.kubernetes.io/enforce-version=latest",
        "pod-security.kubernetes.io/warn=restricted",
    )
    return name
