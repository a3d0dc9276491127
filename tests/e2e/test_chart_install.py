"""The chart on the real kube-apiserver: every rendered object is accepted, `helm install` and `helm upgrade`
work, the Redis password survives the upgrade, and the operator's ServiceAccount can do its job and no more."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from chart.e2e import PREFIX, RELEASE, helm, install_apis
from chart.render import CHART, NAMESPACE, VOLUMES, everything_on, merge, render_matrix


@pytest.fixture(scope="module")
def apis(control_plane):
    """The control plane serving the real monitoring/KEDA CRDs and kopf's peering CRDs."""
    return install_apis(control_plane)


def test_every_rendered_object_is_accepted_by_the_apiserver(apis, namespace):
    """Server-side dry run of every distinct object of every toggle combination (the schema check)."""
    seen, docs = set(), []
    for rendered in render_matrix().values():
        for obj in rendered.objects:
            obj = json.loads(json.dumps(obj).replace(f'"namespace": "{NAMESPACE}"', f'"namespace": "{namespace}"'))
            key = json.dumps(obj, sort_keys=True)
            if key not in seen:
                seen.add(key)
                docs.append(obj)
    assert len(docs) > 40
    # A Pod is checked against its ServiceAccount, which a dry run does not create: make those for real.
    accounts = [d for d in docs if d["kind"] == "ServiceAccount"]
    apis.kubectl("apply", "-f", "-", input="---\n".join(yaml.safe_dump(d) for d in accounts))
    text = "---\n".join(yaml.safe_dump(d) for d in docs)
    out = apis.kubectl("apply", "--dry-run=server", "-f", "-", input=text, check=False, timeout=300)
    assert out.returncode == 0, out.stderr[-4000:]
    assert out.stdout.count("(server dry run)") == len(docs)


def _can(control_plane, kubeconfig: Path, *args: str) -> bool:
    out = control_plane.kubectl("auth", "can-i", *args, kubeconfig=kubeconfig, check=False)
    assert out.stdout.strip() in ("yes", "no"), out.stdout + out.stderr
    return out.stdout.strip() == "yes"


def test_install_rbac_and_upgrade(apis, namespace, tmp_path):
    """helm install of everything, RBAC as the operator's token, and an upgrade that keeps the Redis password."""
    cp = apis
    other = f"{namespace}-x"
    cp.kubectl("create", "namespace", other)
    values = merge(everything_on(), VOLUMES)
    helm(cp, "install", RELEASE, str(CHART), "-n", namespace, values=values)
    manifest = helm(cp, "get", "manifest", RELEASE, "-n", namespace).stdout
    objects = [d for d in yaml.safe_load_all(manifest) if d]
    kinds = {o["kind"] for o in objects}
    assert {
        "Deployment",
        "StatefulSet",
        "ServiceMonitor",
        "PrometheusRule",
        "ScaledObject",
        "TriggerAuthentication",
        "NetworkPolicy",
        "PodDisruptionBudget",
        "KopfPeering",
        "ConfigMap",
    } <= kinds
    for obj in objects:  # every object the release made is really there
        cp.kubectl("get", obj["kind"], obj["metadata"]["name"], "-n", namespace)
    status = json.loads(helm(cp, "status", RELEASE, "-n", namespace, "-o", "json").stdout)
    assert status["info"]["status"] == "deployed"
    assert "kubectl -n" in status["info"]["notes"] and "get phj -w" in status["info"]["notes"]

    sa = cp.kubeconfig_for_service_account(namespace, f"{PREFIX}-operator", tmp_path / "operator.kubeconfig")
    ns = ["-n", namespace]
    for allowed in (
        ["patch", "phashjobs.phashfleet.io", "--subresource=status"],
        ["watch", "phashjobs.phashfleet.io"],
        ["patch", "phashjobs.phashfleet.io"],
        ["create", "phashjobs.phashfleet.io"],  # a PhashCronJob's runs
        ["delete", "phashjobs.phashfleet.io"],  # replaced and pruned runs
        ["watch", "phashcronjobs.phashfleet.io"],
        ["patch", "phashcronjobs.phashfleet.io", "--subresource=status"],
        ["create", "events"],
        ["patch", "kopfpeerings.kopf.dev"],
        ["get", f"deployments.apps/{PREFIX}-worker"],
    ):
        assert _can(cp, sa, *allowed, *ns), f"the operator cannot {allowed}"
    for denied in (
        ["get", "secrets"],
        ["list", "secrets"],
        ["get", "secrets", "-n", other],
        ["list", "secrets", "--all-namespaces"],
        ["get", "configmaps"],
        ["create", "phashcronjobs.phashfleet.io"],
        ["delete", "phashcronjobs.phashfleet.io"],
        ["create", "pods"],
        ["create", "deployments.apps"],
        ["patch", f"deployments.apps/{PREFIX}-operator"],
        ["patch", "deployments.apps/other", "--subresource=scale"],
        ["list", "phashjobs.phashfleet.io", "-n", other],
        ["list", "namespaces"],
        ["patch", "clusterkopfpeerings.kopf.dev"],
    ):
        assert not _can(cp, sa, *denied, *([] if "-n" in denied or "--all-namespaces" in denied else ns)), (
            f"the operator can {denied}"
        )
    # KEDA scales the workers in this install, so the operator may only read the scale subresource.
    assert _can(cp, sa, "get", f"deployments.apps/{PREFIX}-worker", "--subresource=scale", *ns)
    assert not _can(cp, sa, "patch", f"deployments.apps/{PREFIX}-worker", "--subresource=scale", *ns)

    secret = cp.get_json("secret", f"{PREFIX}-redis", namespace=namespace)["data"]["redis-password"]
    helm(
        cp,
        "upgrade",
        RELEASE,
        str(CHART),
        "-n",
        namespace,
        values=merge(values, {"autoscaling": {"mode": "operator"}, "worker": {"shutdownTimeoutSeconds": 60}}),
    )
    assert cp.get_json("secret", f"{PREFIX}-redis", namespace=namespace)["data"]["redis-password"] == secret
    worker = cp.get_json("deployment", f"{PREFIX}-worker", namespace=namespace)
    assert worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 75
    sts = cp.get_json("statefulset", f"{PREFIX}-redis", namespace=namespace)
    assert sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"  # same claim: the AOF stays
    assert _can(cp, sa, "patch", f"deployments.apps/{PREFIX}-worker", "--subresource=scale", *ns)
    assert "ScaledObject" not in {
        d["kind"] for d in yaml.safe_load_all(helm(cp, "get", "manifest", RELEASE, "-n", namespace).stdout) if d
    }
    helm(cp, "uninstall", RELEASE, "-n", namespace)


def test_cluster_wide_install(apis, namespace, tmp_path):
    """operator.clusterWide: a ClusterRole for PhashJobs everywhere, still no Secrets anywhere."""
    cp = apis
    other = f"{namespace}-y"
    cp.kubectl("create", "namespace", other)
    try:
        helm(cp, "install", RELEASE, str(CHART), "-n", namespace, values={"operator": {"clusterWide": True}})
        sa = cp.kubeconfig_for_service_account(namespace, f"{PREFIX}-operator", tmp_path / "operator.kubeconfig")
        assert _can(cp, sa, "list", "phashjobs.phashfleet.io", "--all-namespaces")
        assert _can(cp, sa, "patch", "phashjobs.phashfleet.io", "--subresource=status", "-n", other)
        assert _can(cp, sa, "patch", "clusterkopfpeerings.kopf.dev")
        assert _can(cp, sa, "watch", "namespaces")
        assert not _can(cp, sa, "get", "secrets", "-n", other)
        assert not _can(cp, sa, "list", "secrets", "--all-namespaces")
        assert not _can(cp, sa, "patch", "deployments.apps", "--subresource=scale", "-n", other)
        peering = cp.get_json("clusterkopfpeering", f"{namespace}-{PREFIX}")
        assert peering["metadata"]["name"] == f"{namespace}-{PREFIX}"
    finally:
        # Cluster-scoped objects outlive the namespace: uninstall removes them.
        helm(cp, "uninstall", RELEASE, "-n", namespace, check=False)


def test_external_redis_without_password_is_refused(apis, namespace):
    """helm install itself refuses an external Redis without a password Secret, naming the value."""
    proc = helm(
        apis,
        "install",
        RELEASE,
        str(CHART),
        "-n",
        namespace,
        values={"redis": {"enabled": False, "url": "redis://redis.example:6379/0"}},
        check=False,
    )
    assert proc.returncode != 0 and "redis.existingSecret is required" in proc.stderr
    proc = helm(apis, "install", RELEASE, str(CHART), "-n", namespace, values={"worker": {"replica": 3}}, check=False)
    assert proc.returncode != 0 and "'replica'" in proc.stderr
