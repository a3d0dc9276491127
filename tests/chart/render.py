"""Render the chart with the real `helm template` and hand back its objects."""

from __future__ import annotations

import functools
import itertools
import json
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import yaml

from chart.tools import REPO, require_tool

CHART = REPO / "charts" / "phash-fleet"
RELEASE = "rel"
NAMESPACE = "phash"

#: Every optional API the chart can use, as `helm template --api-versions` arguments.
ALL_APIS = (
    "monitoring.coreos.com/v1",
    "monitoring.coreos.com/v1/ServiceMonitor",
    "monitoring.coreos.com/v1/PodMonitor",
    "monitoring.coreos.com/v1/PrometheusRule",
    "keda.sh/v1alpha1",
    "keda.sh/v1alpha1/ScaledObject",
    "keda.sh/v1alpha1/TriggerAuthentication",
)

#: The values each toggle of the chart can take; TOGGLE_MATRIX is their full product.
EXTERNAL_REDIS = {"redis": {"enabled": False, "url": "redis://redis.example:6379/0", "existingSecret": "redis-auth"}}
TOGGLES = {
    "redis": [{}, EXTERNAL_REDIS],
    "autoscaling": [{"autoscaling": {"mode": m}} for m in ("operator", "keda", "none")],
    "monitor": [{}, {"metrics": {"serviceMonitor": {"enabled": True}}}, {"metrics": {"podMonitor": {"enabled": True}}}],
    "rules": [{}, {"metrics": {"prometheusRule": {"enabled": True}}}],
    "dashboards": [{}, {"grafana": {"dashboards": {"enabled": True}}}],
    "networkPolicy": [{}, {"networkPolicy": {"enabled": True}}],
    "clusterWide": [{}, {"operator": {"clusterWide": True}}],
}

#: Source and output volumes of every kind, mounted in the "everything on" renders.
VOLUMES = {
    "source": {
        "volumes": [
            {"name": "photos", "mountPath": "/data/photos", "existingClaim": "photos"},
            {"name": "nas", "mountPath": "/data/nas", "nfs": {"server": "nas.example", "path": "/export/pics"}},
            {"name": "host", "mountPath": "/data/host", "hostPath": {"path": "/srv/pics"}},
        ],
        "s3": {"existingSecret": "s3-creds", "endpointUrl": "http://minio.example:9000", "region": "eu-west-1"},
    },
    "output": {"volumes": [{"name": "results", "mountPath": "/data/results", "existingClaim": "results"}]},
}


def merge(*layers: dict) -> dict:
    """Deep-merge dicts, later layers winning."""
    out: dict = {}
    for layer in layers:
        for key, value in layer.items():
            if isinstance(value, dict) and isinstance(out.get(key), dict):
                out[key] = merge(out[key], value)
            else:
                out[key] = value
    return out


def toggle_matrix() -> Iterator[tuple[str, dict]]:
    """Yield (id, values) for every combination of TOGGLES."""
    names = list(TOGGLES)
    for combo in itertools.product(*(range(len(TOGGLES[n])) for n in names)):
        ident = "-".join(f"{n}{i}" for n, i in zip(names, combo, strict=False))
        yield ident, merge(*(TOGGLES[n][i] for n, i in zip(names, combo, strict=False)))


@dataclass
class Rendered:
    """The objects of one render, with lookups by kind and name."""

    objects: list[dict]

    def kinds(self) -> list[str]:
        """Every object's kind, in render order."""
        return [o["kind"] for o in self.objects]

    def of(self, kind: str) -> list[dict]:
        """Every object of a kind."""
        return [o for o in self.objects if o["kind"] == kind]

    def get(self, kind: str, name: str) -> dict:
        """The one object of a kind and name; KeyError when absent."""
        for obj in self.of(kind):
            if obj["metadata"]["name"] == name:
                return obj
        raise KeyError(f"{kind}/{name} not rendered; have {sorted(self.names())}")

    def names(self) -> list[str]:
        """kind/name of every object."""
        return [f"{o['kind']}/{o['metadata']['name']}" for o in self.objects]

    def pod_specs(self) -> list[tuple[str, dict]]:
        """(kind/name, pod spec) of every workload and bare Pod."""
        specs = []
        for obj in self.objects:
            if obj["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
                specs.append((f"{obj['kind']}/{obj['metadata']['name']}", obj["spec"]["template"]["spec"]))
            elif obj["kind"] == "Pod":
                specs.append((f"Pod/{obj['metadata']['name']}", obj["spec"]))
        return specs


def helm_cmd(*args: str) -> list[str]:
    """A helm command line (skips or fails when helm is missing)."""
    return [require_tool("helm"), *args]


def run_template(
    values: dict | None = None,
    apis: tuple[str, ...] = ALL_APIS,
    extra: tuple[str, ...] = (),
    namespace: str = NAMESPACE,
    release: str = RELEASE,
) -> subprocess.CompletedProcess:
    """Run `helm template` with values given as JSON on stdin; return the finished process."""
    args = ["template", release, str(CHART), "--namespace", namespace, "-f", "-", *extra]
    for api in apis:
        args += ["--api-versions", api]
    return subprocess.run(helm_cmd(*args), input=json.dumps(values or {}), capture_output=True, text=True, timeout=60)


def render(values: dict | None = None, **kwargs) -> Rendered:
    """Render the chart and parse its objects; fail with helm's stderr when it refuses."""
    proc = run_template(values, **kwargs)
    assert proc.returncode == 0, f"helm template failed:\n{proc.stderr}"
    return Rendered([doc for doc in yaml.load_all(proc.stdout, Loader=yaml.CSafeLoader) if doc])


def render_error(values: dict, **kwargs) -> str:
    """Render values that must be refused; return helm's error text."""
    proc = run_template(values, **kwargs)
    assert proc.returncode != 0, f"helm accepted values it should refuse: {values}"
    return proc.stderr


def everything_on() -> dict:
    """Values with every optional object of the chart switched on."""
    return merge(
        VOLUMES,
        {
            "metrics": {
                "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
                "prometheusRule": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
            },
            "grafana": {"dashboards": {"enabled": True}},
            "networkPolicy": {"enabled": True},
            "autoscaling": {"mode": "keda"},
        },
    )


@functools.cache
def render_matrix() -> dict[str, Rendered]:
    """Render every combination of TOGGLES once per test session, a few helm processes at a time."""

    def one(item: tuple[str, dict]) -> tuple[str, Rendered]:
        ident, values = item
        proc = run_template(values)
        assert proc.returncode == 0, f"{ident}: helm template failed:\n{proc.stderr}"
        return ident, Rendered([d for d in yaml.load_all(proc.stdout, Loader=yaml.CSafeLoader) if d])

    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(pool.map(one, toggle_matrix()))
