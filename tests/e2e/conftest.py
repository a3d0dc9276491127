"""The `fleet` fixture: a worker Deployment run by the pod runner and an operator, for one namespace."""

from __future__ import annotations

import pytest

from harness.fleet import WORKER, worker_deployment


@pytest.fixture
def fleet(control_plane, namespace, redis_server, redis_env, pod_runner, operator, tmp_path, request, tmp_path_factory):
    """Workers (through the pod runner) and an operator for one namespace, with data under tmp_path."""
    data = tmp_path / "data"
    # Workers may read anything under pytest's base folder, so session-wide corpora are usable too.
    roots = str(tmp_path_factory.getbasetemp())
    control_plane.kubectl(
        "create", "secret", "generic", "redis", f"--from-literal=password={redis_server.password}", "-n", namespace
    )
    control_plane.apply(worker_deployment(namespace, roots, redis_server.url, str(tmp_path)))
    runner = pod_runner(namespace, WORKER)
    env = {
        **redis_env,
        "PHASHFLEET_WORKER_DEPLOYMENT": WORKER,
        "PHASHFLEET_WORKER_NAMESPACE": namespace,
        "PHASHFLEET_MIN_REPLICAS": "0",
        "PHASHFLEET_MAX_REPLICAS": str(getattr(request, "param", {}).get("max_replicas", 2)),
        "PHASHFLEET_IDLE_COOLDOWN": "2",
        "PHASHFLEET_ALLOWED_ROOTS": roots,
        "PHASHFLEET_OUTPUT_ROOTS": str(tmp_path),
    }
    op = operator(namespace, env=env, args=tuple(getattr(request, "param", {}).get("operator_args", ())))
    return {"data": data, "runner": runner, "operator": op, "namespace": namespace, "tmp": tmp_path, "env": env}


def _status(control_plane, namespace: str, name: str) -> dict:
    return control_plane.get_json("phj", name, namespace=namespace).get("status", {})


@pytest.fixture(scope="session")
def big_corpus(tmp_path_factory):
    """(folder, truth): 40 large photos with JPEG near-duplicates, made once per session."""
    from harness.fleet import make_corpus

    folder = tmp_path_factory.mktemp("big-corpus")
    return folder, make_corpus(folder, photos=40, size=(1600, 1200), copy_format="jpg")
