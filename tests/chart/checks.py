"""Assertions shared by the chart tests: pod hardening and the operator's RBAC."""

from __future__ import annotations

from chart.render import Rendered

UID = 10001


def expected_operator_rules(
    release_prefix: str, cluster_wide: bool, scales: bool, watch_namespace: str = "default"
) -> set[tuple]:
    """The exact rules the operator's ServiceAccount must end up with: (role kind, group, resource, verbs, names)."""
    watch_kind = "ClusterRole" if cluster_wide else "Role"
    worker = f"{release_prefix}-worker"
    rules = {
        (watch_kind, "phashfleet.io", "phashjobs", ("create", "delete", "get", "list", "patch", "update", "watch"), ()),
        (watch_kind, "phashfleet.io", "phashjobs/status", ("get", "patch", "update"), ()),
        (watch_kind, "phashfleet.io", "phashcronjobs", ("get", "list", "patch", "watch"), ()),
        (watch_kind, "phashfleet.io", "phashcronjobs/status", ("get", "patch"), ()),
        (watch_kind, "phashfleet.io", "phashcronjobs/finalizers", ("update",), ()),
        (watch_kind, "", "events", ("create", "patch"), ()),
        ("Role", "apps", "deployments", ("get",), (worker,)),
        ("Role", "apps", "deployments/scale", ("get", "patch", "update") if scales else ("get",), (worker,)),
    }
    if cluster_wide:
        rules |= {
            ("ClusterRole", "kopf.dev", "clusterkopfpeerings", ("get", "list", "patch", "watch"), ()),
            ("ClusterRole", "", "namespaces", ("get", "list", "watch"), ()),
        }
    else:
        rules.add(("Role", "kopf.dev", "kopfpeerings", ("get", "list", "patch", "watch"), ()))
        # The watched Namespace alone, for its phashfleet.io/max-running-jobs annotation.
        rules.add(("ClusterRole", "", "namespaces", ("get",), (watch_namespace,)))
    return rules


def operator_rules(rendered: Rendered, sa_name: str, sa_namespace: str) -> set[tuple]:
    """Every rule granted to a ServiceAccount through the rendered (Cluster)RoleBindings, flattened."""
    roles = {(o["kind"], o["metadata"]["name"]): o for o in rendered.objects if o["kind"] in ("Role", "ClusterRole")}
    granted = set()
    for binding in rendered.objects:
        if binding["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        subjects = binding.get("subjects", [])
        if not any(
            s["kind"] == "ServiceAccount" and s["name"] == sa_name and s["namespace"] == sa_namespace for s in subjects
        ):
            continue
        role = roles[(binding["roleRef"]["kind"], binding["roleRef"]["name"])]
        for rule in role["rules"]:
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    granted.add(
                        (
                            role["kind"],
                            group,
                            resource,
                            tuple(sorted(rule["verbs"])),
                            tuple(rule.get("resourceNames", ())),
                        )
                    )
    return granted


def assert_hardened(where: str, spec: dict) -> None:
    """Fail unless a pod spec is non-root, read-only, capability-free, seccomp'd, and has resources."""
    psc = spec.get("securityContext", {})
    assert psc.get("runAsNonRoot") is True, f"{where}: pod runAsNonRoot"
    assert psc.get("runAsUser") == UID, f"{where}: pod runAsUser {psc.get('runAsUser')}"
    assert psc.get("seccompProfile", {}).get("type") == "RuntimeDefault", f"{where}: pod seccomp"
    assert spec.get("hostNetwork") is not True and spec.get("hostPID") is not True, f"{where}: host namespaces"
    assert "automountServiceAccountToken" in spec, f"{where}: automountServiceAccountToken must be explicit"
    containers = spec["containers"] + spec.get("initContainers", [])
    emptydirs = {v["name"] for v in spec.get("volumes", []) if "emptyDir" in v}
    for c in containers:
        name = f"{where}/{c['name']}"
        sc = c.get("securityContext", {})
        assert sc.get("allowPrivilegeEscalation") is False, f"{name}: allowPrivilegeEscalation"
        assert sc.get("readOnlyRootFilesystem") is True, f"{name}: readOnlyRootFilesystem"
        assert sc.get("privileged") is not True, f"{name}: privileged"
        assert sc.get("capabilities", {}).get("drop") == ["ALL"], f"{name}: capabilities.drop"
        assert not sc.get("capabilities", {}).get("add"), f"{name}: capabilities.add"
        assert sc.get("runAsNonRoot") is True and sc.get("runAsUser") == UID, f"{name}: non-root UID"
        assert sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", f"{name}: seccomp"
        res = c.get("resources", {})
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(res.get(kind, {})), f"{name}: resources.{kind} cpu+memory"
        pinned = "@sha256:" in c["image"] or ":" in c["image"].rsplit("/", 1)[-1]
        assert pinned and not c["image"].endswith(":latest"), f"{name}: image needs a fixed tag or digest"
        mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
        if "/tmp" in mounts:
            assert mounts["/tmp"]["name"] in emptydirs, f"{name}: /tmp must be an emptyDir"
        for m in c.get("volumeMounts", []):
            if m["mountPath"].startswith("/data/") and m["name"].startswith("source-"):
                assert m.get("readOnly") is True, f"{name}: source mount {m['mountPath']} must be read-only"
