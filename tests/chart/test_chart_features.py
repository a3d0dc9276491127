"""What the chart's values turn into: Redis, volumes, S3, scaling, monitoring, network policy, helm test, NOTES."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess

import yaml

from chart.render import CHART, EXTERNAL_REDIS, NAMESPACE, RELEASE, VOLUMES, everything_on, helm_cmd, merge, render
from chart.tools import REPO

P = f"{RELEASE}-phash-fleet"


def container(r, kind, name):
    """The first container of a workload."""
    return r.get(kind, name)["spec"]["template"]["spec"]["containers"][0]


def env_of(c) -> dict:
    """A container's env as {name: value or valueFrom}."""
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in c.get("env", [])}


def test_bundled_redis_has_aof_pvc_and_a_generated_password():
    r = render()
    sts = r.get("StatefulSet", f"{P}-redis")
    c = sts["spec"]["template"]["spec"]["containers"][0]
    cmd = " ".join(c["command"])
    assert (
        "--appendonly yes" in cmd
        and "--maxmemory-policy noeviction" in cmd
        and '--requirepass "$REDIS_PASSWORD"' in cmd
    )
    assert {m["mountPath"]: m["name"] for m in c["volumeMounts"]}["/data"] == "data"
    assert sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "8Gi"
    password = base64.b64decode(r.get("Secret", f"{P}-redis")["data"]["redis-password"]).decode()
    assert len(password) == 32 and password.isalnum()
    for kind, name in (("Deployment", f"{P}-operator"), ("Deployment", f"{P}-worker")):
        env = env_of(container(r, kind, name))
        assert env["PHASHFLEET_REDIS_URL"] == f"redis://{P}-redis.{NAMESPACE}.svc:6379/0"
        assert env["PHASHFLEET_REDIS_PASSWORD"] == {"secretKeyRef": {"name": f"{P}-redis", "key": "redis-password"}}
    assert r.get("Service", f"{P}-redis")["spec"]["ports"][0]["port"] == 6379


def test_bundled_redis_without_persistence_uses_an_emptydir():
    sts = render({"redis": {"persistence": {"enabled": False}}}).get("StatefulSet", f"{P}-redis")
    assert "volumeClaimTemplates" not in sts["spec"]
    assert {"name": "data", "emptyDir": {}} in sts["spec"]["template"]["spec"]["volumes"]


def test_bundled_redis_with_an_existing_secret_makes_none():
    r = render({"redis": {"existingSecret": "mine", "existingSecretPasswordKey": "pw"}})
    assert not r.of("Secret")
    env = env_of(container(r, "Deployment", f"{P}-worker"))
    assert env["PHASHFLEET_REDIS_PASSWORD"] == {"secretKeyRef": {"name": "mine", "key": "pw"}}


def test_external_redis_and_keda_address():
    values = merge(EXTERNAL_REDIS, {"redis": {"url": "rediss://cache.example/3"}, "autoscaling": {"mode": "keda"}})
    r = render(values)
    assert not r.of("StatefulSet") and not r.of("Secret") and f"Service/{P}-redis" not in r.names()
    env = env_of(container(r, "Deployment", f"{P}-operator"))
    assert env["PHASHFLEET_REDIS_URL"] == "rediss://cache.example/3"
    assert env["PHASHFLEET_REDIS_PASSWORD"] == {"secretKeyRef": {"name": "redis-auth", "key": "redis-password"}}
    trigger = r.get("ScaledObject", f"{P}-worker")["spec"]["triggers"][0]
    assert trigger["type"] == "redis"
    assert trigger["metadata"] == {
        "address": "cache.example:6379",
        "listName": "dramatiq:phashfleet",
        "listLength": "4",
        "databaseIndex": "3",
        "enableTLS": "true",
    }
    auth = r.get("TriggerAuthentication", trigger["authenticationRef"]["name"])
    assert auth["spec"]["secretTargetRef"] == [{"parameter": "password", "name": "redis-auth", "key": "redis-password"}]


def test_keda_scaled_object_targets_the_workers():
    r = render({"autoscaling": {"mode": "keda", "minReplicas": 0, "maxReplicas": 7}})
    so = r.get("ScaledObject", f"{P}-worker")["spec"]
    assert so["scaleTargetRef"]["name"] == f"{P}-worker" and r.get("Deployment", f"{P}-worker")
    assert (so["minReplicaCount"], so["maxReplicaCount"]) == (0, 7)
    assert so["triggers"][0]["metadata"]["address"] == f"{P}-redis.{NAMESPACE}.svc:6379"


def test_source_and_output_volumes_go_to_the_workers_and_nothing_of_them_to_the_operator():
    r = render(VOLUMES)
    op, wk = container(r, "Deployment", f"{P}-operator"), container(r, "Deployment", f"{P}-worker")
    mounts = {m["mountPath"]: m for m in wk["volumeMounts"]}
    for path in ("/data/photos", "/data/nas", "/data/host"):
        assert mounts[path]["readOnly"] is True
    assert env_of(wk)["PHASHFLEET_ALLOWED_ROOTS"] == "/data/photos:/data/nas:/data/host"
    assert wk["envFrom"] == [{"secretRef": {"name": "s3-creds"}}]
    assert env_of(wk)["AWS_ENDPOINT_URL"] == "http://minio.example:9000"
    assert env_of(wk)["AWS_DEFAULT_REGION"] == "eu-west-1"
    # The workers list sources: the operator mounts no data and holds no S3 credentials (it checks a
    # source's path against the roots, which is text).
    assert [m["mountPath"] for m in op["volumeMounts"]] == ["/tmp"]
    assert "envFrom" not in op and not any(name.startswith("AWS_") for name in env_of(op))
    op_volumes = r.get("Deployment", f"{P}-operator")["spec"]["template"]["spec"]["volumes"]
    assert [v["name"] for v in op_volumes] == ["tmp"]
    assert env_of(op)["PHASHFLEET_ALLOWED_ROOTS"] == "/data/photos:/data/nas:/data/host"
    # The workers' collector writes outputs; the operator only checks a job's output path against the roots.
    assert {m["mountPath"]: m.get("readOnly") for m in wk["volumeMounts"]}["/data/results"] is False
    assert "/data/results" not in {m["mountPath"] for m in op["volumeMounts"]}
    assert env_of(op)["PHASHFLEET_OUTPUT_ROOTS"] == env_of(wk)["PHASHFLEET_OUTPUT_ROOTS"] == "/data/results"
    vols = {v["name"]: v for v in r.get("Deployment", f"{P}-worker")["spec"]["template"]["spec"]["volumes"]}
    assert vols["source-photos"]["persistentVolumeClaim"] == {"claimName": "photos", "readOnly": True}
    assert vols["source-nas"]["nfs"] == {"server": "nas.example", "path": "/export/pics", "readOnly": True}
    assert vols["source-host"]["hostPath"] == {"path": "/srv/pics", "type": "Directory"}


def test_the_result_store_is_a_claim_of_the_workers_only_unless_it_is_an_object_store():
    r = render({})
    op, wk = container(r, "Deployment", f"{P}-operator"), container(r, "Deployment", f"{P}-worker")
    assert env_of(wk)["PHASHFLEET_RESULT_STORE"] == "/var/lib/phashfleet/results"
    assert {m["mountPath"]: m["name"] for m in wk["volumeMounts"]}["/var/lib/phashfleet/results"] == "results"
    vols = {v["name"]: v for v in r.get("Deployment", f"{P}-worker")["spec"]["template"]["spec"]["volumes"]}
    assert vols["results"]["persistentVolumeClaim"] == {"claimName": f"{P}-results"}
    claim = r.get("PersistentVolumeClaim", f"{P}-results")
    assert (
        claim["spec"]["accessModes"] == ["ReadWriteOnce"]
        and claim["spec"]["resources"]["requests"]["storage"] == "20Gi"
    )
    assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"  # results outlive an uninstall
    assert "PHASHFLEET_RESULT_STORE" not in env_of(op)
    assert all(m["mountPath"] == "/tmp" for m in op["volumeMounts"])  # the operator holds no data volume of its own

    mine = render({"resultStore": {"existingClaim": "shared-results"}})
    vols = {v["name"]: v for v in mine.get("Deployment", f"{P}-worker")["spec"]["template"]["spec"]["volumes"]}
    assert vols["results"]["persistentVolumeClaim"] == {"claimName": "shared-results"}
    assert not mine.of("PersistentVolumeClaim")

    s3 = render({"resultStore": {"uri": "s3://bucket/phashfleet"}})
    wk = container(s3, "Deployment", f"{P}-worker")
    assert env_of(wk)["PHASHFLEET_RESULT_STORE"] == "s3://bucket/phashfleet"
    assert "results" not in {m["name"] for m in wk["volumeMounts"]} and not s3.of("PersistentVolumeClaim")


def test_explicit_allowed_roots_win():
    r = render(merge(VOLUMES, {"source": {"allowedRoots": ["/data/photos/2024"]}}))
    assert env_of(container(r, "Deployment", f"{P}-worker"))["PHASHFLEET_ALLOWED_ROOTS"] == "/data/photos/2024"


def test_worker_contract():
    r = render({"worker": {"shutdownTimeoutSeconds": 90, "metricsPort": 9300}})
    dep = r.get("Deployment", f"{P}-worker")
    spec, c = dep["spec"]["template"]["spec"], dep["spec"]["template"]["spec"]["containers"][0]
    env = env_of(c)
    assert c["command"] == ["phashfleet", "worker"]
    assert env["PHASHFLEET_SHUTDOWN_TIMEOUT"] == "90" and spec["terminationGracePeriodSeconds"] > 90
    assert spec["automountServiceAccountToken"] is False
    assert r.get("ServiceAccount", f"{P}-worker")["automountServiceAccountToken"] is False
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    emptydirs = {v["name"] for v in spec["volumes"] if "emptyDir" in v}
    assert mounts[env["PROMETHEUS_MULTIPROC_DIR"]] in emptydirs
    assert c["args"][:2] == ["--metrics-port", "9300"] and c["ports"][0]["containerPort"] == 9300
    assert r.get("Service", f"{P}-worker")["spec"]["ports"][0]["port"] == 9300
    assert r.get("PodDisruptionBudget", f"{P}-worker")["spec"]["maxUnavailable"] == 1


def test_operator_contract():
    r = render({"autoscaling": {"minReplicas": 2, "maxReplicas": 9, "batchesPerWorker": 6}})
    dep = r.get("Deployment", f"{P}-operator")
    c = dep["spec"]["template"]["spec"]["containers"][0]
    env = env_of(c)
    assert dep["spec"]["strategy"] == {"type": "Recreate"} and dep["spec"]["replicas"] == 1
    assert c["command"] == ["phashfleet", "operator"]
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"metrics": 8080, "health": 8081}
    assert env["PHASHFLEET_WORKER_DEPLOYMENT"] == f"{P}-worker"
    assert (env["PHASHFLEET_MIN_REPLICAS"], env["PHASHFLEET_MAX_REPLICAS"], env["PHASHFLEET_BATCHES_PER_WORKER"]) == (
        "2",
        "9",
        "6",
    )
    assert env["PHASHFLEET_NAMESPACE"] == NAMESPACE
    assert env["PHASHFLEET_PEERING"] == r.get("KopfPeering", P)["metadata"]["name"]
    assert r.get("KopfPeering", P)["metadata"]["namespace"] == NAMESPACE


def test_operator_watching_another_namespace():
    r = render({"operator": {"watchNamespace": "media"}})
    assert env_of(container(r, "Deployment", f"{P}-operator"))["PHASHFLEET_NAMESPACE"] == "media"
    assert r.get("Role", f"{P}-operator")["metadata"]["namespace"] == "media"
    assert r.get("RoleBinding", f"{P}-operator")["subjects"][0]["namespace"] == NAMESPACE
    assert r.get("KopfPeering", P)["metadata"]["namespace"] == "media"
    assert r.get("Role", f"{P}-operator-scaler")["metadata"]["namespace"] == NAMESPACE


def test_services_select_their_pods():
    r = render(everything_on())
    pods = [
        o["spec"]["template"]["metadata"]["labels"] for o in r.objects if o["kind"] in ("Deployment", "StatefulSet")
    ]
    for svc in r.of("Service"):
        sel = svc["spec"]["selector"]
        assert sum(1 for labels in pods if sel.items() <= labels.items()) == 1, svc["metadata"]["name"]


def test_monitors_and_rule_carry_the_selector_labels():
    r = render(everything_on())
    for sm in r.of("ServiceMonitor"):
        assert sm["metadata"]["labels"]["release"] == "kube-prometheus-stack"
        ep = sm["spec"]["endpoints"][0]
        assert ep["port"] == "metrics"
        assert ep["relabelings"][0]["replacement"] == sm["metadata"]["name"]
    assert r.get("PrometheusRule", P)["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    pm = render({"metrics": {"podMonitor": {"enabled": True, "labels": {"team": "media"}}}})
    assert [p["metadata"]["labels"]["team"] for p in pm.of("PodMonitor")] == ["media", "media"]


def test_monitors_let_the_scrape_own_job_and_give_back_the_phashjob_namespace():
    """No honorLabels (the fleet's labels never collide with `job`); exported_namespace goes back to `namespace`."""
    monitors = render(everything_on()).of("ServiceMonitor") + render({"metrics": {"podMonitor": {"enabled": True}}}).of(
        "PodMonitor"
    )
    assert {m["kind"] for m in monitors} == {"ServiceMonitor", "PodMonitor"}
    for m in monitors:
        (ep,) = m["spec"].get("endpoints") or m["spec"]["podMetricsEndpoints"]
        assert "honorLabels" not in ep, m["metadata"]["name"]
        assert ep["metricRelabelings"] == [
            {
                "sourceLabels": ["exported_namespace"],
                "regex": "(.+)",
                "targetLabel": "namespace",
                "replacement": "$1",
                "action": "replace",
            },
            {"regex": "exported_namespace", "action": "labeldrop"},
        ]


def test_dashboard_configmaps_hold_the_generated_json():
    r = render({"grafana": {"dashboards": {"enabled": True}}})
    maps = r.of("ConfigMap")
    assert len(maps) == 2
    for cm in maps:
        assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
        ((name, text),) = cm["data"].items()
        assert json.loads(text) == json.loads((REPO / "dashboards" / name).read_text())
    custom = render(
        {
            "grafana": {
                "dashboards": {
                    "enabled": True,
                    "label": "dash",
                    "labelValue": "yes",
                    "namespace": "monitoring",
                    "annotations": {"grafana_folder": "phash"},
                }
            }
        }
    )
    for cm in custom.of("ConfigMap"):
        assert cm["metadata"]["labels"]["dash"] == "yes" and "grafana_dashboard" not in cm["metadata"]["labels"]
        assert cm["metadata"]["namespace"] == "monitoring"
        assert cm["metadata"]["annotations"] == {"grafana_folder": "phash"}


def test_network_policy_lets_only_the_fleet_reach_redis():
    r = render(
        {
            "networkPolicy": {"enabled": True, "extraRedisClients": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]},
            "autoscaling": {"mode": "keda"},
        }
    )
    np = r.get("NetworkPolicy", f"{P}-redis")["spec"]
    redis_labels = r.get("StatefulSet", f"{P}-redis")["spec"]["template"]["metadata"]["labels"]
    assert np["podSelector"]["matchLabels"].items() <= redis_labels.items()
    assert np["policyTypes"] == ["Ingress"]
    peers = np["ingress"][0]["from"]
    fleet = peers[0]["podSelector"]

    def admitted(labels):
        if not fleet["matchLabels"].items() <= labels.items():
            return False
        return all(labels.get(e["key"]) in e["values"] for e in fleet["matchExpressions"])

    for kind, name in (("Deployment", f"{P}-operator"), ("Deployment", f"{P}-worker")):
        assert admitted(r.get(kind, name)["spec"]["template"]["metadata"]["labels"])
    assert admitted(r.get("Pod", f"{P}-test")["metadata"]["labels"])
    assert not admitted(redis_labels)
    assert peers[1] == {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "keda"}}}
    assert peers[2] == {"ipBlock": {"cidr": "10.0.0.0/8"}}


def test_helm_test_pod_checks_healthz_and_redis():
    pod = render().get("Pod", f"{P}-test")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    script = pod["spec"]["containers"][0]["command"][-1]
    assert f"http://{P}-operator.{NAMESPACE}.svc:8081/healthz" in script
    assert "redis-cli" in script and "PONG" in script
    assert not render({"tests": {"enabled": False}}).of("Pod")


def test_images_follow_app_version_tag_and_digest():
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    r = render({"worker": {"image": {"digest": "sha256:" + "a" * 64}}, "operator": {"image": {"tag": "9.9"}}})
    assert container(r, "Deployment", f"{P}-worker")["image"] == "phash-fleet/worker@sha256:" + "a" * 64
    assert container(r, "Deployment", f"{P}-operator")["image"] == "phash-fleet/operator:9.9"
    assert container(render(), "Deployment", f"{P}-worker")["image"] == f"phash-fleet/worker:{chart['appVersion']}"


def test_notes_render_next_steps_and_crd_upgrade(tmp_path):
    """NOTES.txt (rendered through a copy of the chart, since `helm template` never prints it)."""
    chart = tmp_path / "phash-fleet"
    shutil.copytree(CHART, chart)
    (chart / "notes.txt").write_text((chart / "templates" / "NOTES.txt").read_text())
    (chart / "templates" / "NOTES.txt").unlink()
    (chart / "templates" / "zz-notes.yaml").write_text(
        'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\ndata:\n  notes: {{ tpl (.Files.Get "notes.txt") . | toJson }}\n'
    )

    def notes(values):
        proc = subprocess.run(
            helm_cmd(
                "template", RELEASE, str(chart), "-n", NAMESPACE, "-f", "-", "--show-only", "templates/zz-notes.yaml"
            ),
            input=json.dumps(values),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr
        return yaml.safe_load(proc.stdout)["data"]["notes"]

    text = notes(VOLUMES)
    assert f"kubectl -n {NAMESPACE} get phj -w" in text
    assert "uri: file:///data/photos" in text
    assert "kubectl apply --server-side -f phash-fleet/crds/" in text
    assert "helm test rel" in text
    warned = notes({"metrics": {"serviceMonitor": {"enabled": True}}})
    assert "WARNING: metrics.serviceMonitor.enabled is true" in warned
    assert "only s3:// and http(s):// sources" in warned
