"""Two operator replicas with kopf peering: only the leader acts (handlers and autoscaler); the survivor takes
over when it dies."""

from __future__ import annotations

import re
import time
import urllib.request
from pathlib import Path

from harness.fleet import job_status, phash_job, wait_phase
from harness.wait import wait_for

PEERING_CRD = Path(__file__).resolve().parents[2] / "charts" / "phash-fleet" / "crds" / "kopfpeerings.kopf.dev.yaml"


def _status_writes(proc) -> float:
    text = urllib.request.urlopen(proc.metrics_url, timeout=5).read().decode()
    return sum(float(m) for m in re.findall(r"^phashfleet_status_writes_total\{[^}]*\} (\S+)$", text, re.M))


def _desired_replicas(proc) -> float:
    text = urllib.request.urlopen(proc.metrics_url, timeout=5).read().decode()
    return float(re.search(r"^phashfleet_worker_replicas_desired (\S+)$", text, re.M).group(1))


def test_standby_waits_then_takes_over(control_plane, fleet, big_corpus, operator, redis_env):
    ns = fleet["namespace"]
    control_plane.kubectl("apply", "--server-side", "-f", str(PEERING_CRD))
    control_plane.kubectl("wait", "--for=condition=Established", "crd/kopfpeerings.kopf.dev")
    control_plane.apply(
        {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": "phash-fleet", "namespace": ns}}
    )
    fleet["operator"].stop()  # the fixture's standalone operator leaves; two peered replicas come in
    env = {**fleet["env"], "PHASHFLEET_PEERING_LIFETIME": "8"}
    leader = operator(ns, env=env, name="leader", args=("--peering", "phash-fleet", "--priority", "100"))
    standby = operator(ns, env=env, name="standby", args=("--peering", "phash-fleet", "--priority", "50"))
    folder, truth = big_corpus
    control_plane.apply(
        phash_job("peered", f"file://{folder}", str(fleet["tmp"] / "peered.jsonl"), batchSize=2), namespace=ns
    )
    wait_for(
        lambda: job_status(control_plane, ns, "peered").get("succeeded", 0) >= 4,
        timeout=120,
        what="the leader making progress",
    )
    assert _status_writes(leader) > 0
    assert _status_writes(standby) == 0, "the standby acted while the leader was alive"
    # The autoscaler too: with batches queued the leader wants workers; the standby never decided anything.
    assert _desired_replicas(leader) >= 1
    assert _desired_replicas(standby) == 0, "the standby's autoscaler ran while the leader was alive"
    assert "this operator runs the autoscaler" in leader.log_path.read_text(errors="replace")
    assert "this operator runs the autoscaler" not in standby.log_path.read_text(errors="replace")
    killed_at = time.monotonic()
    leader.kill()
    wait_for(lambda: _status_writes(standby) > 0, timeout=90, what="the standby taking over")
    wait_for(
        lambda: "this operator runs the autoscaler" in standby.log_path.read_text(errors="replace"),
        timeout=30,
        what="the standby taking over the autoscaler",
    )
    takeover = time.monotonic() - killed_at
    status = wait_phase(control_plane, fleet, "peered")
    print(f"\nstandby took over {takeover:.1f}s after the leader was killed (peering lifetime 8s)")
    assert status["phase"] == "Succeeded"
    assert status["succeeded"] + status["failed"] + status["skipped"] == truth["files"]
