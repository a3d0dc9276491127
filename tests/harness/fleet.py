"""Helpers for end-to-end fleet tests: a photo corpus, the worker Deployment and PhashJob manifests, waits."""

from __future__ import annotations

from pathlib import Path

import yaml
from PIL import ImageFilter

from harness.synthetic import photo_like
from harness.wait import wait_for

WORKER = "phash-fleet-worker"


def make_corpus(
    folder: Path,
    photos: int,
    size: tuple[int, int] = (320, 240),
    copy_format: str = "png",
) -> dict[str, int]:
    """Write photos (each with a blurred near-duplicate), a corrupt JPEG and a text file; return the truth."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(photos):
        img = photo_like(*size, seed=i)
        img.save(folder / f"photo {i:03d}.jpg", quality=90)
        img.filter(ImageFilter.GaussianBlur(1)).save(folder / f"photo {i:03d} copy.{copy_format}")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (folder / "notes.jpg").write_text("plain text with an image name")
    return {"files": photos * 2 + 2}


def worker_deployment(namespace: str, roots: str, redis_url: str, output_roots: str = "") -> dict:
    """The worker Deployment the pod runner runs: it reads under `roots` and collects outputs under `output_roots`."""
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
            - {{name: PHASHFLEET_OUTPUT_ROOTS, value: "{output_roots}"}}
""")


def phash_job(name: str, uri: str, output: str, **spec) -> dict:
    return {
        "apiVersion": "phashfleet.io/v1alpha1",
        "kind": "PhashJob",
        "metadata": {"name": name},
        "spec": {
            "source": {"uri": uri},
            "batchSize": 8,
            "timeoutSeconds": 20,
            "output": {"uri": output},
            "duplicates": {"maxDistance": 8},
            **spec,
        },
    }


def job_status(control_plane, namespace: str, name: str) -> dict:
    """The PhashJob's status (empty before the operator writes one)."""
    return control_plane.get_json("phj", name, namespace=namespace).get("status", {})


def wait_phase(control_plane, fleet, name: str, phases=("Succeeded", "Failed"), timeout: float = 240) -> dict:
    """Poll until the job reaches one of `phases`; return its status."""
    return wait_for(
        lambda: (s := job_status(control_plane, fleet["namespace"], name)).get("phase") in phases and s,
        timeout=timeout,
        interval=0.5,
        what=f"{name} to reach {phases}; operator log:\n" + fleet["operator"].log_tail(),
    )
