"""Fair sharing between namespaces: equal shares of the hashing at equal priority, and a cap on running jobs."""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from kubernetes import client, watch

from harness.fleet import WORKER, phash_job, worker_deployment
from harness.synthetic import photo_like
from harness.wait import wait_for
from phashfleet.state.redis_store import RedisJobStore
from phashfleet_operator.reconcile import job_id

WORKERS = 2
#: Files each namespace has to hash, split between its jobs: a minute of hashing for two workers.
NAMESPACE_FILES = 600


def _corpus(folder: Path, files: int, seed: int, size: tuple[int, int] = (1280, 960), distinct: int = 24) -> Path:
    """`files` photos: `distinct` made from seeds from `seed`, the rest hard links to them under other names
    (every path is its own cache entry, and making photos is the slow part)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        path = folder / f"p{i:04d}.jpg"
        if i < distinct:
            photo_like(*size, seed=seed + i).save(path, quality=85)
        else:
            os.link(folder / f"p{i % distinct:04d}.jpg", path)
    return folder


@pytest.fixture
def shared_fleet(control_plane, namespace, redis_server, redis_env, pod_runner, operator, tmp_path, tmp_path_factory):
    """Two workers in `namespace` and one operator for every namespace, as a cluster-wide install runs."""
    roots = str(tmp_path_factory.getbasetemp())
    control_plane.kubectl(
        "create", "secret", "generic", "redis", f"--from-literal=password={redis_server.password}", "-n", namespace
    )
    control_plane.apply(worker_deployment(namespace, roots, redis_server.url, str(tmp_path)))
    pod_runner(namespace, WORKER)
    env = {
        **redis_env,
        "PHASHFLEET_WORKER_DEPLOYMENT": WORKER,
        "PHASHFLEET_WORKER_NAMESPACE": namespace,
        "PHASHFLEET_MIN_REPLICAS": str(WORKERS),
        "PHASHFLEET_MAX_REPLICAS": str(WORKERS),
        "PHASHFLEET_ALLOWED_ROOTS": roots,
        "PHASHFLEET_OUTPUT_ROOTS": str(tmp_path),
    }
    op = operator(None, env=env)
    return {"operator": op, "store": RedisJobStore(redis_server.client()), "tmp": tmp_path}


def _new_namespace(control_plane, prefix: str, annotations: dict[str, str] | None = None) -> str:
    name = f"{prefix}-{secrets.token_hex(3)}"
    meta = {"name": name, "annotations": annotations or {}}
    control_plane.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": meta})
    return name


def _uid(control_plane, namespace: str, name: str) -> str:
    return control_plane.get_json("phj", name, namespace=namespace)["metadata"]["uid"]


@pytest.mark.parametrize("jobs_in_first", [1, 3], ids=["one-job-each", "three-jobs-against-one"])
def test_namespaces_at_equal_priority_share_the_hashing_equally(control_plane, shared_fleet, jobs_in_first):
    """Each namespace gets 45-55% of the files hashed while both have work, however many jobs each has."""
    store, tmp = shared_fleet["store"], shared_fleet["tmp"]
    layout = {_new_namespace(control_plane, "share-a"): jobs_in_first, _new_namespace(control_plane, "share-b"): 1}
    ids: dict[str, list[str]] = {}
    manifests = {
        ns: [
            phash_job(
                f"big-{i}",
                f"file://{_corpus(tmp / f'{ns}-{i}', NAMESPACE_FILES // count, 10_000 + 100 * (n * 3 + i))}",
                str(tmp / f"{ns}-{i}.jsonl"),
                batchSize=4,
            )
            for i in range(count)
        ]
        for n, (ns, count) in enumerate(layout.items())
    }
    for ns, items in manifests.items():
        control_plane.apply({"apiVersion": "v1", "kind": "List", "items": items}, namespace=ns)
    for ns, count in layout.items():
        ids[ns] = [job_id(ns, f"big-{i}", _uid(control_plane, ns, f"big-{i}")) for i in range(count)]

    def done() -> dict[str, int]:
        return {ns: sum(store.snapshot(j).done_files for j in jids) for ns, jids in ids.items()}

    def total(ns: str) -> int:
        return NAMESPACE_FILES // layout[ns] * layout[ns]

    # From when every namespace is hashing (the first one's head start drained) until one is nearly done.
    def when(condition: Callable[[dict[str, int]], bool]) -> Callable[[], dict[str, int] | None]:
        def check() -> dict[str, int] | None:
            counts = done()
            return counts if condition(counts) else None

        return check

    start = wait_for(
        when(lambda d: all(d[ns] >= total(ns) * 0.15 for ns in ids)),
        timeout=300,
        interval=0.2,
        what="both namespaces hashing; operator log:\n" + shared_fleet["operator"].log_tail(),
    )
    end = wait_for(
        when(lambda d: any(d[ns] >= total(ns) * 0.75 for ns in ids)),
        timeout=300,
        interval=0.2,
        what="a namespace three quarters done",
    )
    hashed = {ns: end[ns] - start[ns] for ns in ids}
    shares = {ns: hashed[ns] / sum(hashed.values()) for ns in ids}
    print(
        f"\nfiles hashed per namespace over the same interval ({jobs_in_first} job(s) against 1): "
        + ", ".join(f"{ns}: {hashed[ns]} ({shares[ns]:.1%})" for ns in ids)
    )
    assert sum(hashed.values()) >= 60, hashed  # an interval long enough to measure a share
    for ns, share in shares.items():
        assert 0.45 <= share <= 0.55, (ns, shares, hashed)
    for ns in ids:
        for i in range(layout[ns]):
            wait_for(
                lambda ns=ns, i=i: (
                    control_plane.get_json("phj", f"big-{i}", namespace=ns).get("status", {}).get("phase")
                    == "Succeeded"
                ),
                timeout=300,
                interval=0.5,
                what=f"{ns}/big-{i} to succeed",
            )


def test_max_running_jobs_runs_one_at_a_time_in_creation_order(control_plane, shared_fleet):
    """With max-running-jobs: 1 a namespace never has two Running jobs; the rest wait Queued, then all finish."""
    tmp = shared_fleet["tmp"]
    ns = _new_namespace(control_plane, "capped", {"phashfleet.io/max-running-jobs": "1"})
    names = [f"job-{i}" for i in range(3)]
    phases: dict[str, str | None] = dict.fromkeys(names)
    running_at_once: list[list[str]] = []
    started: list[str] = []
    queued: dict[str, list[dict[str, str]]] = {name: [] for name in names}
    stop = threading.Event()
    api = client.CustomObjectsApi(control_plane.api_client())

    def follow() -> None:
        # A watch sees every status write in order, so no overlap of two Running jobs can slip between polls.
        w = watch.Watch()
        while not stop.is_set():
            for event in w.stream(
                api.list_namespaced_custom_object, "phashfleet.io", "v1alpha1", ns, "phashjobs", timeout_seconds=5
            ):
                obj = event["object"]
                name, status = obj["metadata"]["name"], obj.get("status") or {}
                phase = status.get("phase")
                if phase == "Running" and phases.get(name) != "Running" and name not in started:
                    started.append(name)
                phases[name] = phase
                for cond in status.get("conditions") or []:
                    if cond.get("type") == "Queued" and cond.get("status") == "True":
                        queued[name].append(cond)
                running_at_once.append(sorted(n for n, p in phases.items() if p == "Running"))
                if stop.is_set():
                    break

    items = [
        phash_job(
            name,
            f"file://{_corpus(tmp / f'{ns}-{i}', 40, 50_000 + 100 * i, size=(960, 720))}",
            str(tmp / f"{name}.jsonl"),
            batchSize=2,
        )
        for i, name in enumerate(names)
    ]
    follower = threading.Thread(target=follow, daemon=True)
    follower.start()
    control_plane.apply({"apiVersion": "v1", "kind": "List", "items": items}, namespace=ns)
    try:
        wait_for(
            lambda: all(p == "Succeeded" for p in phases.values()),
            timeout=300,
            interval=0.2,
            what=f"all three jobs to succeed (phases {phases}); operator log:\n" + shared_fleet["operator"].log_tail(),
        )
    finally:
        stop.set()
        follower.join(timeout=10)
    print(f"\nstart order {started}; most Running at once {max(len(r) for r in running_at_once)}")
    assert max(len(r) for r in running_at_once) == 1, [r for r in running_at_once if len(r) > 1][:5]
    assert started == names  # creation order
    assert queued["job-0"] == []
    for i, name in enumerate(names[1:], start=1):
        assert queued[name] and all(c["reason"] == "NamespaceLimit" for c in queued[name]), queued[name]
        assert all("max-running-jobs" in c["message"] for c in queued[name]), queued[name]
        # While it waits, its condition names the job that runs (one created before it).
        assert any(f"running: {names[i - 1]}" in c["message"] or "running: job-0" in c["message"] for c in queued[name])
    print(f"a Queued condition: {queued['job-2'][-1]['message']}")
