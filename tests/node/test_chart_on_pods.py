"""The chart on real pods of a real node, in a `restricted` namespace: probes, security, jobs, faults, lifecycle.

One release serves the module's tests in order (install → job with 0→N→0 scaling → helm test → worker
loss mid-job → upgrade → uninstall), because a `helm install --wait` of real pods costs tens of seconds.
"""

from __future__ import annotations

import json
import shutil

import pytest

from harness.fleet import job_status, make_corpus, phash_job
from harness.wait import WaitTimeout, wait_for
from node.release import (
    PREFIX,
    RELEASE,
    exec_in,
    helm,
    install,
    installed_sources_match,
    manifest_objects,
    pods,
    run_job,
    running_pods,
    wait_workers,
    worker_replicas,
)

pytestmark = pytest.mark.usefixtures("node")
#: Copies of the corpus the worker-loss job hashes: the second worker starts only after the first has listed
#: the source and begun hashing, and under load one worker alone got through five copies' first half first.
COPIES = 10


@pytest.fixture(scope="module")
def fleet(node, tmp_path_factory):
    """The chart installed in a restricted namespace over a corpus of 40 photos (82 files)."""
    namespace = "chart-pods"
    node.plane.kubectl("create", "namespace", namespace)
    node.plane.kubectl(
        "label",
        "namespace",
        namespace,
        "pod-security.kubernetes.io/enforce=restricted",
        "pod-security.kubernetes.io/enforce-version=latest",
    )
    folder = tmp_path_factory.mktemp("chart-pods")
    data, out = folder / "data", folder / "out"
    out.mkdir()
    truth = make_corpus(data, photos=40, size=(1600, 1200), copy_format="jpg")
    fleet = install(node, namespace, data, out)
    fleet["truth"] = truth
    return fleet


def _output(fleet: dict, name: str) -> list[dict]:
    return [json.loads(line) for line in (fleet["out"] / f"{name}.jsonl").read_text().splitlines()]


def test_every_pod_is_ready_through_its_own_probes_and_admitted_as_restricted(node, fleet):
    ns = fleet["namespace"]
    for component in ("operator", "redis"):
        assert len(running_pods(node, ns, component)) == 1, pods(node, ns, component)
    operator = running_pods(node, ns, "operator")[0]["metadata"]["name"]
    assert installed_sources_match(node, ns, operator, "phashfleet_operator") == [], "the image runs stale code"
    assert exec_in(node, ns, operator, "id", "-u").stdout.strip() == "10001"
    denied = exec_in(node, ns, operator, "sh", "-c", "touch /written-by-test")
    assert denied.returncode != 0 and "Read-only file system" in denied.stderr + denied.stdout
    # The namespace refuses what `restricted` forbids, so the chart's pods were admitted on their merits.
    refused = node.plane.kubectl(
        "-n", ns, "run", "rooty", "--image=" + node.images["pause"].name, "--image-pull-policy=Never", check=False
    )
    assert refused.returncode != 0 and "violates PodSecurity" in refused.stderr


def test_a_job_runs_to_succeeded_on_real_pods_scaling_workers_0_to_n_to_0(node, fleet):
    ns = fleet["namespace"]
    wait_workers(node, ns, 0, timeout=120)  # with no job the operator scales the Deployment's first pod away
    assert worker_replicas(node, ns) == 0
    run_job(node, fleet, "photos", wait=False, batchSize=4)
    wait_workers(node, ns, 1)
    worker = running_pods(node, ns, "worker")[0]["metadata"]["name"]
    assert installed_sources_match(node, ns, worker, "phashfleet") == [], "the worker image runs stale code"
    assert exec_in(node, ns, worker, "id", "-u").stdout.strip() == "10001"
    assert exec_in(node, ns, worker, "sh", "-c", "echo x > /x").returncode != 0, "a worker wrote to its root"
    status = wait_for(
        lambda: (s := job_status(node.plane, ns, "photos")).get("phase") in ("Succeeded", "Failed") and s,
        timeout=300,
        interval=0.5,
        what="the job to end",
    )
    files = fleet["truth"]["files"]
    assert status["phase"] == "Succeeded", status
    assert status["total"] == files and status["succeeded"] + status["failed"] + status["skipped"] == files, status
    records = _output(fleet, "photos")
    assert len(records) == files and len({r["path"] for r in records}) == files
    assert sum(r["status"] == "failed" for r in records) == 2  # the corrupt JPEG and the text file
    wait_workers(node, ns, 0, timeout=120)  # the operator's autoscaler scales back to zero when idle
    assert worker_replicas(node, ns) == 0
    # The operator ran with only its ServiceAccount: kopf's optional cluster-wide look at namespaces and CRDs
    # is refused by design (a namespaced operator gets no ClusterRole); nothing else may be.
    log = fleet["operator"].log_tail(2000)
    refused = [
        line
        for line in log.splitlines()
        if "Forbidden" in line and "/api/v1/namespaces " not in line and "/customresourcedefinitions " not in line
    ]
    assert refused == [], "\n".join(refused)
    assert node.plane.get_json("kopfpeering", PREFIX, namespace=ns).get("status"), "kopf wrote its peering"


def test_helm_test_runs_as_a_pod_and_fails_with_a_wrong_password(node, fleet):
    ns = fleet["namespace"]
    passed = helm(node, "test", RELEASE, "-n", ns, check=False)
    assert passed.returncode == 0 and "Phase:          Succeeded" in passed.stdout, passed.stdout + passed.stderr
    secret = node.plane.get_json("secret", f"{PREFIX}-redis", namespace=ns)
    wrong = json.dumps({"data": {"redis-password": "d3JvbmctcGFzc3dvcmQ="}})  # "wrong-password"
    node.plane.kubectl("-n", ns, "patch", "secret", f"{PREFIX}-redis", "--type=merge", "-p", wrong)
    try:
        failed = helm(node, "test", RELEASE, "-n", ns, check=False)
        assert failed.returncode != 0, "helm test passed with a wrong Redis password"
    finally:
        node.plane.kubectl(
            "-n", ns, "patch", "secret", f"{PREFIX}-redis", "--type=merge", "-p", json.dumps({"data": secret["data"]})
        )
    # Helm keeps a failed test's Pod for reading; the next run replaces it, and passes again.
    assert helm(node, "test", RELEASE, "-n", ns, check=False).returncode == 0


def test_losing_workers_mid_job_leaves_the_job_exact(node, fleet):
    """One worker pod deleted, the other's container SIGKILLed from the host: the job still counts each file once."""
    ns = fleet["namespace"]
    # Ten copies of the corpus in exact mode, one file a message: long enough a job that the second worker
    # starts (after the first has listed the source and begun hashing) and both are lost in the middle of it.
    copies = fleet["data"] / "losses"
    for n in range(COPIES):
        shutil.copytree(fleet["data"], copies / f"copy{n}", ignore=shutil.ignore_patterns("losses"))
    files = COPIES * fleet["truth"]["files"]
    node.plane.apply(
        phash_job("losses", "file:///data/losses", "/out/losses.jsonl", batchSize=1, exact=True, timeoutSeconds=60),
        namespace=ns,
    )
    try:
        _lose_workers_mid_job(node, fleet, files)
    finally:
        shutil.rmtree(copies)  # the other tests count the corpus alone


def _lose_workers_mid_job(node, fleet: dict, files: int) -> None:
    ns = fleet["namespace"]
    wait_workers(node, ns, 2, timeout=180)
    seen: list[dict] = []

    def under_way() -> bool:
        seen.append(job_status(node.plane, ns, "losses"))
        return 0 < (seen[-1].get("succeeded") or 0) < files * 3 // 4

    try:
        wait_for(under_way, timeout=180, interval=0.1, what="the job to be under way")
    except WaitTimeout:
        pods_now = [(p["metadata"]["name"], p["status"].get("phase")) for p in pods(node, ns, "worker")]
        last = {k: seen[-1].get(k) for k in ("phase", "total", "succeeded", "failed", "conditions")} if seen else {}
        raise AssertionError(f"not under way: {last}; workers {pods_now}\n{fleet['operator'].log_tail()}") from None
    first, second = running_pods(node, ns, "worker")[:2]
    node.plane.kubectl("-n", ns, "delete", "pod", first["metadata"]["name"], "--wait=false")
    node.kill_container(second["status"]["containerStatuses"][0]["containerID"])
    assert job_status(node.plane, ns, "losses").get("phase") not in ("Succeeded", "Failed"), "the job ended first"
    status = wait_for(
        lambda: (s := job_status(node.plane, ns, "losses")).get("phase") in ("Succeeded", "Failed") and s,
        timeout=300,
        interval=0.5,
        what="the job to end after losing workers",
    )
    assert status["phase"] == "Succeeded" and status["total"] == files, status
    assert status["succeeded"] + status["failed"] + status["skipped"] == files, status
    records = _output(fleet, "losses")
    assert len(records) == files and len({r["path"] for r in records}) == files
    killed = [p for p in pods(node, ns, "worker") if p["metadata"]["name"] == second["metadata"]["name"]]
    assert not killed or killed[0]["status"]["containerStatuses"][0]["restartCount"] >= 1, (
        "the kubelet did not restart the killed worker container"
    )


def test_upgrade_keeps_redis_data_and_password(node, fleet):
    ns = fleet["namespace"]
    redis = running_pods(node, ns, "redis")[0]["metadata"]["name"]
    exec_in(node, ns, redis, "sh", "-c", "redis-cli set upgrade-marker kept", check=True)
    secret = node.plane.get_json("secret", f"{PREFIX}-redis", namespace=ns)["data"]
    old_uid = running_pods(node, ns, "redis")[0]["metadata"]["uid"]
    values = json.loads(helm(node, "get", "values", RELEASE, "-n", ns, "-o", "json").stdout)
    values.setdefault("redis", {})["podAnnotations"] = {"test/restart": "1"}  # a new Redis pod, same claim
    helm(node, "upgrade", RELEASE, "charts/phash-fleet", "-n", ns, "--wait", "--timeout=5m", values=values)
    wait_for(
        lambda: [p for p in running_pods(node, ns, "redis") if p["metadata"]["uid"] != old_uid],
        timeout=180,
        what="the new Redis pod ready",
    )
    assert node.plane.get_json("secret", f"{PREFIX}-redis", namespace=ns)["data"] == secret
    redis = running_pods(node, ns, "redis")[0]["metadata"]["name"]
    assert exec_in(node, ns, redis, "redis-cli", "get", "upgrade-marker").stdout.strip() == "kept"


def test_uninstall_leaves_nothing_of_ours(node, fleet):
    """With redis.persistence.keepOnUninstall=false and resultStore.persistence.keepOnUninstall=false even the
    Redis and result-store claims go (by default they stay, with their data)."""
    ns = fleet["namespace"]
    values = json.loads(helm(node, "get", "values", RELEASE, "-n", ns, "-o", "json").stdout)
    values.setdefault("redis", {}).setdefault("persistence", {})["keepOnUninstall"] = False
    values.setdefault("resultStore", {}).setdefault("persistence", {})["keepOnUninstall"] = False
    helm(node, "upgrade", RELEASE, "charts/phash-fleet", "-n", ns, "--wait", "--timeout=5m", values=values)
    claim = node.plane.get_json("pvc", f"data-{PREFIX}-redis-0", namespace=ns)
    made = {(o["kind"], o["metadata"]["name"]) for o in manifest_objects(node, ns)}
    helm(node, "uninstall", RELEASE, "-n", ns, "--wait", "--timeout=3m")
    for kind, name in made:
        assert node.plane.kubectl("-n", ns, "get", kind, name, check=False).returncode != 0, f"{kind}/{name} stayed"
    wait_for(lambda: node.plane.get_json("pods", namespace=ns)["items"] == [], timeout=120, what="every pod gone")
    wait_for(
        lambda: (
            sorted(c["metadata"]["name"] for c in node.plane.get_json("pvc", namespace=ns)["items"])
            == ["results", "source"]
        ),
        timeout=60,
        what="only the test's own claims left",
    )
    volume = claim["spec"]["volumeName"]  # the provisioner deletes the released volume and its folder
    wait_for(
        lambda: node.plane.kubectl("get", "pv", volume, check=False).returncode != 0,
        timeout=60,
        what=f"the Redis volume {volume} deleted",
    )
