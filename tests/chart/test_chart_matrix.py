"""Every combination of the chart's toggles renders, and every render is hardened and least-privileged."""

from __future__ import annotations

import functools

import pytest

from chart.checks import assert_hardened, expected_operator_rules, operator_rules
from chart.render import NAMESPACE, RELEASE, Rendered, render_matrix, toggle_matrix

PREFIX = f"{RELEASE}-phash-fleet"
MATRIX = list(toggle_matrix())
CLUSTER_SCOPED = {"ClusterRole", "ClusterRoleBinding", "ClusterKopfPeering", "CustomResourceDefinition"}


@pytest.fixture(scope="module")
def renders() -> dict[str, Rendered]:
    """Every combination, rendered once (shared with the e2e dry-run)."""
    return render_matrix()


def test_matrix_covers_every_toggle_value():
    """The matrix is the full product of the toggles (3*3*2^5 = 288 renders)."""
    assert len(MATRIX) == 288
    assert len({ident for ident, _ in MATRIX}) == 288


@pytest.mark.parametrize("ident,values", MATRIX, ids=[i for i, _ in MATRIX])
def test_render(renders, ident, values):
    """Objects present match the toggles; pods are hardened; the operator's RBAC is exactly the expected."""
    r = renders[ident]
    on = functools.partial(_get, values)
    bundled = on("redis.enabled") is not False
    mode = on("autoscaling.mode")
    cluster_wide = bool(on("operator.clusterWide"))

    for obj in r.objects:
        meta = obj["metadata"]
        assert len(meta["name"]) <= 63, f"name too long: {meta['name']}"
        assert meta["labels"]["app.kubernetes.io/instance"] == RELEASE
        if obj["kind"] not in CLUSTER_SCOPED:
            assert meta.get("namespace") == NAMESPACE, f"{obj['kind']}/{meta['name']} has no namespace"
    assert len(set(r.names())) == len(r.names()), "two objects share a kind and name"

    assert len(r.of("ServiceMonitor")) == (2 if on("metrics.serviceMonitor.enabled") else 0)
    assert len(r.of("PodMonitor")) == (2 if on("metrics.podMonitor.enabled") else 0)
    assert len(r.of("PrometheusRule")) == (1 if on("metrics.prometheusRule.enabled") else 0)
    assert len(r.of("ConfigMap")) == (2 if on("grafana.dashboards.enabled") else 0)
    assert len(r.of("NetworkPolicy")) == (1 if on("networkPolicy.enabled") and bundled else 0)
    assert len(r.of("ScaledObject")) == len(r.of("TriggerAuthentication")) == (1 if mode == "keda" else 0)
    assert len(r.of("StatefulSet")) == len(r.of("Secret")) == (1 if bundled else 0)
    # Cluster-wide: the operator's ClusterRole; else one to read the watched Namespace alone (its job limit).
    assert len(r.of("ClusterRole")) == len(r.of("ClusterRoleBinding")) == 1
    assert [p["kind"] for p in r.of("KopfPeering") + r.of("ClusterKopfPeering")] == [
        "ClusterKopfPeering" if cluster_wide else "KopfPeering"
    ]

    for where, spec in r.pod_specs():
        assert_hardened(where, spec)

    worker = r.get("Deployment", f"{PREFIX}-worker")
    assert ("replicas" in worker["spec"]) == (mode == "none"), "only a fixed-size fleet may set worker replicas"
    operator_env = {
        e["name"]: e.get("value")
        for e in r.get("Deployment", f"{PREFIX}-operator")["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert operator_env["PHASHFLEET_AUTOSCALING"] == (mode or "operator")
    assert operator_env["PHASHFLEET_NAMESPACE"] == ("" if cluster_wide else NAMESPACE)
    operator_args = r.get("Deployment", f"{PREFIX}-operator")["spec"]["template"]["spec"]["containers"][0].get(
        "args", []
    )
    assert ("--all-namespaces" in operator_args) == cluster_wide, "phashfleet operator needs exactly one of the two"

    granted = operator_rules(r, f"{PREFIX}-operator", NAMESPACE)
    assert granted == expected_operator_rules(
        PREFIX, cluster_wide, scales=(mode or "operator") == "operator", watch_namespace=NAMESPACE
    )


def _get(values: dict, path: str):
    node = values
    for key in path.split("."):
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node
