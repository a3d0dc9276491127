"""A PhashJob applied with kubectl runs to Succeeded on the real control plane, real Redis and real workers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from PIL import Image, ImageFilter

from harness.wait import wait_for
from phashfleet.hashing.synthetic import photo_like

WORKER = "phash-fleet-worker"


def make_corpus(folder: Path, photos: int) -> dict[str, int]:
    """Write photos (each with a blurred near-duplicate), a corrupt JPEG and a text file; return the truth."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(photos):
        img = photo_like(320, 240, seed=i)
        img.save(folder / f"photo {i:03d}.jpg", quality=90)
        img.filter(ImageFilter.GaussianBlur(1)).save(folder / f"photo {i:03d} copy.png")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (folder / "notes.jpg").write_text("plain text with an image name")
    return {"files": photos * 2 + 2}


def worker_deployment(namespace: str, roots: str, redis_url: str) -> dict:
    return yaml.safe_load(f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {WORKER}, namespace: {namespace}}}
spec:
  replicas: 0
  selector: {{matchLabels: {{app: worker}}}}
  template:
    metadata: {{labels: {{app: worker}}}}
    spec:
      containers:
        - name: worker
          image: phash-fleet-worker:test
          command: [phashfleet, worker]
          args: ["--metrics-port", "0"]
          env:
            - {{name: PHASHFLEET_REDIS_URL, value: "{redis_url}"}}
            - {{name: PHASHFLEET_REDIS_PASSWORD, valueFrom: {{secretKeyRef: {{name: redis, key: password}}}}}}
            - {{name: PHASHFLEET_ALLOWED_ROOTS, value: "{roots}"}}
""")


def phash_job(name: str, uri: str, output: str, **spec) -> dict:
    return {"apiVersion": "phashfleet.io/v1alpha1", "kind": "PhashJob", "metadata": {"name": name},
            "spec": {"source": {"uri": uri}, "batchSize": 8, "timeoutSeconds": 20,
                     "output": {"uri": output}, "duplicates": {"maxDistance": 8}, **spec}}


@pytest.fixture
def fleet(control_plane, namespace, redis_server, redis_env, pod_runner, operator, tmp_path):
    """Workers (through the pod runner) and an operator for one namespace, with data under tmp_path."""
    data = tmp_path / "data"
    control_plane.kubectl("create", "secret", "generic", "redis", f"--from-literal=password={redis_server.password}",
                          "-n", namespace)
    control_plane.apply(worker_deployment(namespace, str(tmp_path), redis_server.url))
    runner = pod_runner(namespace, WORKER)
    env = {**redis_env, "PHASHFLEET_WORKER_DEPLOYMENT": WORKER, "PHASHFLEET_WORKER_NAMESPACE": namespace,
           "PHASHFLEET_MIN_REPLICAS": "0", "PHASHFLEET_MAX_REPLICAS": "2", "PHASHFLEET_IDLE_COOLDOWN": "2",
           "PHASHFLEET_ALLOWED_ROOTS": str(tmp_path), "PHASHFLEET_OUTPUT_ROOTS": str(tmp_path)}
    op = operator(namespace, env=env)
    return {"data": data, "runner": runner, "operator": op, "namespace": namespace, "tmp": tmp_path}


def _status(control_plane, namespace: str, name: str) -> dict:
    return control_plane.get_json("phj", name, namespace=namespace).get("status", {})


def test_job_runs_to_success_with_exact_counts_groups_and_scaling(control_plane, fleet):
    truth = make_corpus(fleet["data"], photos=20)
    output = fleet["tmp"] / "out" / "result.jsonl"
    output.parent.mkdir()
    control_plane.apply(phash_job("photos", f"file://{fleet['data']}", str(output)), namespace=fleet["namespace"])
    status = wait_for(lambda: (s := _status(control_plane, fleet["namespace"], "photos")).get("phase")
                      in ("Succeeded", "Failed") and s, timeout=180, interval=0.5,
                      what="job to finish; operator log:\n" + fleet["operator"].log_tail())
    assert status["phase"] == "Succeeded", status
    assert status["total"] == truth["files"]
    assert status["succeeded"] == truth["files"] - 2
    assert status["failed"] + status["skipped"] == 2
    assert status["progress"] == "100%"
    assert status["duplicateGroups"] >= 15 and status["duplicateFiles"] >= 30
    records = [json.loads(line) for line in output.read_text().splitlines()]
    assert len(records) == truth["files"] and len({r["path"] for r in records}) == truth["files"]
    by_name = {Path(r["path"]).name: r for r in records}
    assert by_name["photo 003.jpg"]["group"] is not None
    assert by_name["photo 003.jpg"]["group"] == by_name["photo 003 copy.png"]["group"]
    assert by_name["broken.jpg"]["status"] == "failed" and by_name["broken.jpg"]["reason"]
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert conditions["Complete"] == "True" and conditions["Progressing"] == "False"
    # The operator scaled the workers up for the job and back to zero once idle.
    assert fleet["runner"].max_running() >= 1
    wait_for(lambda: fleet["runner"].running() == 0, timeout=60, what="workers scaled back to zero")
    events = control_plane.kubectl("get", "events", "-n", fleet["namespace"], "-o", "json").stdout
    reasons = {e["reason"] for e in json.loads(events)["items"]}
    assert {"Started", "Completed"} <= reasons


def test_deleting_a_job_removes_its_redis_state(control_plane, fleet, redis_server):
    make_corpus(fleet["data"], photos=5)
    output = fleet["tmp"] / "gone.jsonl"
    control_plane.apply(phash_job("doomed", f"file://{fleet['data']}", str(output), suspend=True),
                        namespace=fleet["namespace"])
    wait_for(lambda: _status(control_plane, fleet["namespace"], "doomed").get("phase") == "Suspended",
             timeout=60, what="job suspended")
    client = redis_server.client()
    assert any(b".doomed." in k for k in client.keys("phashfleet:job:*"))
    control_plane.kubectl("delete", "phj", "doomed", "-n", fleet["namespace"], "--wait=true", "--timeout=60s")
    wait_for(lambda: not any(b".doomed." in k for k in client.keys("phashfleet:job:*")), timeout=30,
             what="the job's Redis keys removed")
