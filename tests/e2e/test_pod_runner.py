"""The pod runner follows a Deployment's replicas with real processes, like a kubelet would."""

from __future__ import annotations

import signal
import sys

import yaml

from harness.wait import wait_for

# A process that runs until SIGTERM and then exits 0, and proves it saw its env (Secret included).
PROGRAM = (
    "import os, signal, sys, time\n"
    "assert os.environ['FROM_SECRET'] == 's3cret' and os.environ['POD_NAME']\n"
    "signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))\n"
    "while True: time.sleep(0.05)\n"
)


def _deployment(namespace: str, replicas: int) -> dict:
    return yaml.safe_load(f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: sleeper, namespace: {namespace}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: sleeper}}}}
  template:
    metadata: {{labels: {{app: sleeper}}}}
    spec:
      containers:
        - name: main
          image: example.invalid/sleeper:1
          command: [{sys.executable!r}, "-c"]
          args: [{PROGRAM!r}]
          env:
            - {{name: FROM_SECRET, valueFrom: {{secretKeyRef: {{name: creds, key: token}}}}}}
            - {{name: POD_NAME, valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}}}
""")


def _scale(control_plane, namespace: str, replicas: int) -> None:
    control_plane.kubectl("scale", "deployment/sleeper", f"--replicas={replicas}", "-n", namespace)


def _ready(control_plane, namespace: str) -> int:
    return control_plane.get_json("deployment", "sleeper", namespace=namespace)["status"].get("readyReplicas", 0)


def test_runner_follows_replicas_up_and_down(control_plane, namespace, pod_runner):
    control_plane.kubectl("create", "secret", "generic", "creds", "--from-literal=token=s3cret", "-n", namespace)
    control_plane.apply(_deployment(namespace, 0))
    runner = pod_runner(namespace, "sleeper")
    for replicas in (3, 1, 0):
        _scale(control_plane, namespace, replicas)
        wait_for(
            lambda n=replicas: runner.running() == n and _ready(control_plane, namespace) == n,
            timeout=30,
            what=f"{replicas} running processes and readyReplicas",
        )
    assert runner.max_running() == 3
    # Every process stopped by a scale-down got SIGTERM and exited cleanly (0), not killed.
    wait_for(lambda: len(runner.exits) == 3, timeout=30, what="three exits recorded")
    assert [code for _, code in runner.exits] == [0, 0, 0], runner.log_tail()


def test_runner_restarts_a_killed_process(control_plane, namespace, pod_runner):
    control_plane.kubectl("create", "secret", "generic", "creds", "--from-literal=token=s3cret", "-n", namespace)
    control_plane.apply(_deployment(namespace, 2))
    runner = pod_runner(namespace, "sleeper")
    wait_for(lambda: runner.running() == 2, timeout=30, what="two processes")
    victim = runner.kill_one(signal.SIGKILL)
    wait_for(
        lambda: victim not in runner.pids() and runner.running() == 2, timeout=30, what="the killed process replaced"
    )
    assert any(code == -signal.SIGKILL for _, code in runner.exits)
