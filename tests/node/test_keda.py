"""autoscaling.mode=keda for real: KEDA's operator and metrics API server scale the worker pods 0 → N → 0
through the HPA, from the Redis queue length, while a job runs to Succeeded."""

from __future__ import annotations

import pytest

from harness.fleet import job_status, make_corpus
from harness.node.host import DNS_SERVICE_IP, NODE_IP
from harness.node.keda import Keda
from harness.wait import wait_for
from node.release import PREFIX, install, pods, run_job, running_pods, worker_replicas


@pytest.fixture
def keda(node, tmp_path):
    """KEDA for the node, its operator resolving Service names through the node's CoreDNS."""
    resolv = tmp_path / "resolv.conf"
    resolv.write_text(f"nameserver {DNS_SERVICE_IP}\nsearch svc.cluster.local cluster.local\noptions ndots:5\n")
    started = Keda(tmp_path / "keda", node.kubeconfig, NODE_IP, resolv_conf=resolv).start()
    yield started
    started.stop()


def test_keda_scales_the_workers_from_zero_and_back(node, keda, restricted_namespace, tmp_path):
    ns = restricted_namespace
    data, out = tmp_path / "data", tmp_path / "out"
    out.mkdir()
    truth = make_corpus(data, photos=30, size=(1600, 1200), copy_format="jpg")
    fleet = install(
        node,
        ns,
        data,
        out,
        values={
            "autoscaling": {
                "mode": "keda",
                "minReplicas": 0,
                "maxReplicas": 2,
                "keda": {"pollingInterval": 1, "cooldownPeriod": 5},
            }
        },
    )
    scaled = node.plane.get_json("scaledobject", f"{PREFIX}-worker", namespace=ns)
    wait_for(
        lambda: any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in node.plane.get_json("scaledobject", f"{PREFIX}-worker", namespace=ns)["status"]["conditions"]
        ),
        timeout=60,
        what=f"the ScaledObject Ready; KEDA log:\n{keda.operator.log_tail()}",
    )
    assert scaled["spec"]["minReplicaCount"] == 0
    # The Deployment starts at one replica until KEDA takes it to zero; that pod may still be stopping.
    wait_for(
        lambda: worker_replicas(node, ns) == 0 and pods(node, ns, "worker") == [],
        timeout=90,
        interval=0.5,
        what="KEDA to hold the workers at zero before there is work",
    )
    run_job(node, fleet, "keda", wait=False, batchSize=1, exact=True)
    wait_for(
        lambda: running_pods(node, ns, "worker"),
        timeout=120,
        interval=0.5,
        what=f"KEDA to start a worker; KEDA log:\n{keda.operator.log_tail()}",
    )
    hpa = node.plane.get_json("hpa", f"keda-hpa-{PREFIX}-worker", namespace=ns)
    assert hpa["spec"]["scaleTargetRef"]["name"] == f"{PREFIX}-worker"
    status = wait_for(
        lambda: (s := job_status(node.plane, ns, "keda")).get("phase") in ("Succeeded", "Failed") and s,
        timeout=300,
        interval=0.5,
        what="the job to end",
    )
    assert status["phase"] == "Succeeded" and status["total"] == truth["files"], status
    wait_for(
        lambda: worker_replicas(node, ns) == 0 and pods(node, ns, "worker") == [],
        timeout=180,
        interval=1,
        what=f"KEDA to scale the workers back to 0; KEDA log:\n{keda.operator.log_tail()}",
    )
