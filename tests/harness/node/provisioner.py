"""A local-path volume provisioner for the node: a folder per claim, writable by the pod's non-root user.

The controller-manager's own hostpath provisioner makes its folders 0750 root-owned, and fsGroup does
not apply to hostPath volumes, so the chart's Redis (UID 10001) could not write its claim. This one
binds each Pending claim of the `local` StorageClass to a new hostPath PersistentVolume over a 0777
folder and deletes the folder with the volume once its claim is gone (reclaim policy Delete).
Run: `python -m harness.node.provisioner KUBECTL KUBECONFIG ROOT`.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

STORAGE_CLASS = "local"
PROVISIONER = "phashfleet.io/local-path"


def storage_class() -> dict:
    """The node's default StorageClass, served by this provisioner."""
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": STORAGE_CLASS, "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
        "provisioner": PROVISIONER,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "Immediate",
    }


def volume_for(claim: dict, root: Path) -> dict:
    """The PersistentVolume that satisfies `claim`, over a folder under `root`."""
    meta = claim["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": f"pvc-{meta['uid']}", "annotations": {"pv.kubernetes.io/provisioned-by": PROVISIONER}},
        "spec": {
            "capacity": {"storage": claim["spec"]["resources"]["requests"]["storage"]},
            "accessModes": claim["spec"].get("accessModes", ["ReadWriteOnce"]),
            "persistentVolumeReclaimPolicy": "Delete",
            "storageClassName": STORAGE_CLASS,
            "hostPath": {"path": str(root / f"pvc-{meta['uid']}"), "type": "Directory"},
            "claimRef": {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "namespace": meta["namespace"],
                "name": meta["name"],
                "uid": meta["uid"],
            },
        },
    }


def reconcile(kubectl, root: Path) -> None:
    """One pass: provision every Pending claim of our class, delete every released volume of ours."""
    claims = json.loads(kubectl("get", "pvc", "--all-namespaces", "-o", "json"))["items"]
    volumes = json.loads(kubectl("get", "pv", "-o", "json"))["items"]
    have = {v["metadata"]["name"] for v in volumes}
    for claim in claims:
        if claim["spec"].get("storageClassName") != STORAGE_CLASS or claim["status"].get("phase") != "Pending":
            continue
        volume = volume_for(claim, root)
        if volume["metadata"]["name"] in have or claim["spec"].get("volumeName"):
            continue
        folder = Path(volume["spec"]["hostPath"]["path"])
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o777)  # any pod user may write, as on a cloud disk formatted for it
        kubectl("create", "-f", "-", input=json.dumps(volume))
    for volume in volumes:
        ours = volume["metadata"].get("annotations", {}).get("pv.kubernetes.io/provisioned-by") == PROVISIONER
        if ours and volume["status"].get("phase") in ("Released", "Failed"):
            shutil.rmtree(volume["spec"]["hostPath"]["path"], ignore_errors=True)
            kubectl("delete", "pv", volume["metadata"]["name"], "--wait=false")


def main(argv: list[str]) -> int:
    """Reconcile once a second until killed."""
    kubectl_path, kubeconfig, root = argv[0], argv[1], Path(argv[2])
    root.mkdir(parents=True, exist_ok=True)

    def kubectl(*args: str, input: str | None = None) -> str:
        done = subprocess.run(
            [kubectl_path, f"--kubeconfig={kubeconfig}", *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        return done.stdout

    while True:
        try:
            reconcile(kubectl, root)
        except (subprocess.SubprocessError, OSError, ValueError) as exc:
            print(f"provisioner: {exc}", file=sys.stderr, flush=True)
        time.sleep(1)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
