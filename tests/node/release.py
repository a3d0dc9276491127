"""The chart on the real node: volumes a restricted namespace may use, install with helm 3 or 4, pods, jobs."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import yaml

from chart.e2e import helm as chart_helm
from chart.render import CHART, merge
from chart.tools import REPO
from harness.fleet import phash_job, wait_phase
from harness.node import images
from harness.wait import wait_for

RELEASE = "fleet"
PREFIX = f"{RELEASE}-phash-fleet"


def helm(node, *args: str, **kwargs) -> subprocess.CompletedProcess:
    """Run helm against the node (see chart.e2e.helm: `binary="helm4"` for Helm 4)."""
    return chart_helm(node.plane, *args, **kwargs)


def host_folder_claim(node, namespace: str, name: str, folder: Path, *, read_only: bool) -> str:
    """A PersistentVolume over a host folder bound to a claim `name` (hostPath itself is not `restricted`)."""
    volume = f"{namespace}-{name}"
    mode = "ReadOnlyMany" if read_only else "ReadWriteOnce"
    node.plane.apply(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": volume},
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": [mode],
                "storageClassName": "",
                "persistentVolumeReclaimPolicy": "Retain",
                "hostPath": {"path": str(folder), "type": "Directory"},
                "claimRef": {"namespace": namespace, "name": name},
            },
        }
    )
    node.plane.apply(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": name},
            "spec": {
                "accessModes": [mode],
                "storageClassName": "",
                "volumeName": volume,
                "resources": {"requests": {"storage": "1Gi"}},
            },
        },
        namespace=namespace,
    )
    return name


def install(
    node,
    namespace: str,
    data: Path,
    out: Path,
    *,
    values: dict | None = None,
    binary: str = "helm",
    parts: Path | None = None,
) -> dict:
    """helm install --wait the chart with the local images, `data` as /data and `out` as /out; return the fleet.

    The result store is the chart's own claim, or with `parts` a claim over that folder bound before the
    install: a worker pod created at once (minReplicas > 0) otherwise meets a claim the test provisioner has
    not bound yet, and the scheduler retries such a pod only after its five-minute unschedulable flush.
    """
    out.chmod(0o777)  # the workers (UID 10001) write outputs here
    host_folder_claim(node, namespace, "source", data, read_only=True)
    host_folder_claim(node, namespace, "results", out, read_only=False)
    if parts is not None:
        parts.mkdir(parents=True, exist_ok=True)
        parts.chmod(0o777)
        host_folder_claim(node, namespace, "parts", parts, read_only=False)
        values = merge({"resultStore": {"existingClaim": "parts"}}, values or {})
    base = merge(
        images.chart_values(node.images),
        {
            "source": {"volumes": [{"name": "source", "mountPath": "/data", "existingClaim": "source"}]},
            "output": {"volumes": [{"name": "results", "mountPath": "/out", "existingClaim": "results"}]},
            "autoscaling": {"mode": "operator", "minReplicas": 0, "maxReplicas": 2},
            "redis": {"persistence": {"size": "1Gi"}},
            "operator": {"extraEnv": [{"name": "PHASHFLEET_IDLE_COOLDOWN", "value": "3"}]},
        },
    )
    helm(
        node,
        "install",
        RELEASE,
        str(CHART),
        "-n",
        namespace,
        "--wait",
        "--timeout=5m",
        values=merge(base, values or {}),
        binary=binary,
    )
    return {"namespace": namespace, "data": data, "out": out, "operator": OperatorLogs(node, namespace)}


class OperatorLogs:
    """The operator pod's log, for failure messages (the shape harness.fleet.wait_phase expects)."""

    def __init__(self, node, namespace: str) -> None:
        self.node, self.namespace = node, namespace

    def log_tail(self, lines: int = 60) -> str:
        """The last lines of the operator's log."""
        out = self.node.plane.kubectl(
            "-n", self.namespace, "logs", f"deployment/{PREFIX}-operator", f"--tail={lines}", check=False
        )
        return out.stdout + out.stderr


def run_job(node, fleet: dict, name: str, *, wait: bool = True, timeout: float = 300, **spec) -> dict:
    """Apply a PhashJob over /data writing /out/<name>.jsonl; wait for its end unless `wait` is false."""
    node.plane.apply(phash_job(name, "file:///data", f"/out/{name}.jsonl", **spec), namespace=fleet["namespace"])
    return wait_phase(node.plane, fleet, name, timeout=timeout) if wait else {}


def pods(node, namespace: str, component: str) -> list[dict]:
    """The pods of one chart component (operator, worker, redis)."""
    listed = node.plane.get_json("pods", "-l", f"app.kubernetes.io/component={component}", namespace=namespace)
    return listed["items"]


def running_pods(node, namespace: str, component: str) -> list[dict]:
    """Pods of a component whose containers all run and are ready."""
    return [
        p
        for p in pods(node, namespace, component)
        if p["status"].get("phase") == "Running"
        and all(c.get("ready") for c in p["status"].get("containerStatuses", []))
        and not p["metadata"].get("deletionTimestamp")
    ]


def exec_in(node, namespace: str, pod: str, *command: str, check: bool = False) -> subprocess.CompletedProcess:
    """kubectl exec a command in a pod's first container."""
    return node.plane.kubectl("-n", namespace, "exec", pod, "--", *command, check=check)


def worker_replicas(node, namespace: str) -> int:
    """The worker Deployment's desired replicas."""
    return node.plane.get_json("deployment", f"{PREFIX}-worker", namespace=namespace)["spec"].get("replicas") or 0


def wait_workers(node, namespace: str, count: int, timeout: float = 120) -> None:
    """Wait until exactly `count` worker pods exist (0 means every worker pod is gone)."""
    wait_for(
        lambda: (
            len(pods(node, namespace, "worker")) == count
            if count == 0
            else len(running_pods(node, namespace, "worker")) >= count
        ),
        timeout=timeout,
        interval=0.5,
        what=f"{count} worker pods in {namespace}",
    )


def manifest_objects(node, namespace: str, binary: str = "helm") -> list[dict]:
    """The objects of the release's manifest."""
    return [
        d
        for d in yaml.safe_load_all(helm(node, "get", "manifest", RELEASE, "-n", namespace, binary=binary).stdout)
        if d
    ]


def installed_sources_match(node, namespace: str, pod: str, package: str) -> list[str]:
    """The .py files of `package` whose copy in the pod differs from the checkout's (empty: the pod runs our code)."""
    local = {
        "phashfleet": REPO / "worker" / "phashfleet",
        "phashfleet_operator": REPO / "operator" / "phashfleet_operator",
    }
    site = "/opt/venv/lib/python3.11/site-packages"
    listed = exec_in(
        node, namespace, pod, "sh", "-c", f"cd {site} && find {package} -name '*.py' | xargs sha256sum", check=True
    ).stdout
    theirs = {path: digest for digest, path in (line.split() for line in listed.splitlines())}
    ours = {
        str(p.relative_to(local[package].parent)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in local[package].rglob("*.py")
    }
    return sorted(path for path in ours.keys() | theirs.keys() if ours.get(path) != theirs.get(path))
