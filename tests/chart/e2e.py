"""Helpers of the chart's end-to-end tests: stand-in APIs, helm against the harness, a fleet installed by the chart."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml

from chart.render import CHART, merge
from chart.tools import require_tool

RELEASE = "fleet"
PREFIX = f"{RELEASE}-phash-fleet"

#: Stand-ins for the CRDs of prometheus-operator and KEDA (no schema: only their kinds matter here), so the
#: apiserver serves monitoring.coreos.com/v1 and keda.sh/v1alpha1 and helm's capability checks see them.
STAND_IN_APIS = {
    "monitoring.coreos.com": ("v1", ["ServiceMonitor", "PodMonitor", "PrometheusRule"]),
    "keda.sh": ("v1alpha1", ["ScaledObject", "TriggerAuthentication"]),
}


def _stand_in_crds() -> list[dict]:
    crds = []
    for group, (version, kinds) in STAND_IN_APIS.items():
        for kind in kinds:
            plural = kind.lower() + ("es" if kind.endswith("s") else "s")
            crds.append({
                "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                "metadata": {"name": f"{plural}.{group}"},
                "spec": {"group": group, "scope": "Namespaced",
                         "names": {"kind": kind, "plural": plural, "singular": kind.lower(), "listKind": kind + "List"},
                         "versions": [{"name": version, "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                             "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]},
            })
    return crds


def install_apis(control_plane):
    """Establish the stand-in CRDs and kopf's peering CRDs on the control plane; return it."""
    crds = _stand_in_crds()
    control_plane.apply("---\n".join(yaml.safe_dump(c) for c in crds), server_side=True)
    control_plane.kubectl("apply", "--server-side", "-f", str(CHART / "crds" / "kopfpeerings.kopf.dev.yaml"))
    names = [c["metadata"]["name"] for c in crds] + ["kopfpeerings.kopf.dev", "clusterkopfpeerings.kopf.dev"]
    control_plane.kubectl("wait", "--for=condition=Established", "--timeout=60s", *(f"crd/{n}" for n in names))
    return control_plane


def helm(control_plane, *args: str, values: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Run helm against the harness's apiserver (values as JSON on stdin)."""
    cmd = [require_tool("helm"), "--kubeconfig", str(control_plane.kubeconfig), *args]
    if values is not None:
        cmd += ["-f", "-"]
    proc = subprocess.run(cmd, input=json.dumps(values) if values is not None else None, capture_output=True,
                          text=True, timeout=180)
    if check:
        assert proc.returncode == 0, f"helm {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


def install_fleet(cp, namespace: str, redis_server, pod_runner, operator, tmp_path: Path, *, photos: int = 4,
                  values: dict | None = None) -> dict:
    """helm install the chart with the harness's Redis; run its worker Deployment (pod runner) and its
    operator as a process holding only the operator ServiceAccount's token, with the chart's env."""
    from harness.fleet import make_corpus  # noqa: PLC0415 - imports the worker package

    cp.kubectl("create", "secret", "generic", "redis-auth", "-n", namespace,
               f"--from-literal=redis-password={redis_server.password}")
    data = tmp_path / "data"
    truth = make_corpus(data, photos=photos)
    base = {
        "redis": {"enabled": False, "url": redis_server.url, "existingSecret": "redis-auth"},
        "autoscaling": {"mode": "operator", "minReplicas": 0, "maxReplicas": 2},
        "source": {"allowedRoots": [str(tmp_path)]},
        "output": {"allowedRoots": [str(tmp_path)]},
        # Local processes share one host: no fixed metrics port, a private multiprocess folder.
        "worker": {"extraArgs": ["--metrics-port", "0"],
                   "extraEnv": [{"name": "PROMETHEUS_MULTIPROC_DIR", "value": str(tmp_path / "prom")}]},
    }
    helm(cp, "install", RELEASE, str(CHART), "-n", namespace, values=merge(base, values or {}))
    runner = pod_runner(namespace, f"{PREFIX}-worker")
    deployment = cp.get_json("deployment", f"{PREFIX}-operator", namespace=namespace)
    env = {e["name"]: e["value"] for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"] if "value" in e}
    env.update({"PHASHFLEET_REDIS_PASSWORD": redis_server.password, "POD_NAMESPACE": namespace,
                "PHASHFLEET_IDLE_COOLDOWN": "2"})
    token = cp.kubeconfig_for_service_account(namespace, f"{PREFIX}-operator", tmp_path / "operator.kubeconfig")
    op = operator(namespace, env=env, kubeconfig=token)
    output = tmp_path / "out" / "photos.jsonl"
    output.parent.mkdir()
    return {"namespace": namespace, "runner": runner, "operator": op, "data": data, "truth": truth, "output": output}


def run_job(cp, fleet: dict, name: str = "photos", **spec) -> dict:
    """Apply a PhashJob over the fleet's data (extra `spec` fields allowed) and wait until it ends."""
    from harness.fleet import phash_job, wait_phase  # noqa: PLC0415

    cp.apply(phash_job(name, f"file://{fleet['data']}", str(fleet["output"]), **spec), namespace=fleet["namespace"])
    return wait_phase(cp, fleet, name)
