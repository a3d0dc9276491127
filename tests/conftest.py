"""Shared fixtures: a real control plane, Redis, pod runner and operator, each started on loopback.

Scopes: the control plane and Redis server live for the whole session; every test gets a fresh
namespace and a flushed Redis. Outside CI a missing tool skips the tests that need it (saying which);
under CI=true it fails them.
"""

from __future__ import annotations

import re
import secrets
from pathlib import Path

import pytest

from harness import tools
from harness.ci import missing
from harness.controlplane import ControlPlane
from harness.operator_proc import OperatorProcess
from harness.podrunner import PodRunner
from harness.redis_server import RedisServer
from harness.wait import wait_for

ROOT = Path(__file__).resolve().parents[1]
CRD_FILE = ROOT / "crds" / "phashjobs.phashfleet.io.yaml"
CRONJOB_CRD_FILE = ROOT / "crds" / "phashcronjobs.phashfleet.io.yaml"


def require_tool(name: str) -> Path:
    """Path of a harness tool; fail in CI, skip elsewhere, when it cannot be had."""
    try:
        return tools.find(name)
    except (tools.ToolMissing, OSError) as exc:
        missing(f"{name} is missing: {exc}")


def pytest_report_header(config):
    """Print the versions of the real servers the tests will start, so every log shows them."""
    lines = []
    for name in ("kube-apiserver", "kubectl", "helm", "etcd", "redis-server", "prometheus"):
        try:
            lines.append(f"{name}: {tools.version_of(name)}")
        except Exception as exc:  # noqa: BLE001 - a header must never break collection
            lines.append(f"{name}: unavailable ({exc})")
    return lines


def pytest_sessionfinish(session, exitstatus):
    """No server or worker started by the harness outlives the test session."""
    from harness.process import kill_all_started

    kill_all_started()


@pytest.fixture(scope="session", autouse=True)
def result_store_root(tmp_path_factory) -> Path:
    """Every result store the tests' processes open (workers, operators, `phashfleet run`) lies in the session's
    scratch space, not in the user's cache: PHASHFLEET_RESULT_STORE is set for the session (children inherit it)."""
    import os

    from phashfleet.state.result_store import RESULT_STORE_ENV

    root = tmp_path_factory.mktemp("result-store")
    before = os.environ.get(RESULT_STORE_ENV)
    os.environ[RESULT_STORE_ENV] = str(root)
    yield root
    if before is None:
        os.environ.pop(RESULT_STORE_ENV, None)
    else:
        os.environ[RESULT_STORE_ENV] = before


@pytest.fixture(scope="session")
def workdir(tmp_path_factory) -> Path:
    """A session-wide scratch folder for server data and logs."""
    return tmp_path_factory.mktemp("harness")


@pytest.fixture(scope="session")
def control_plane(workdir) -> ControlPlane:
    """etcd + kube-apiserver (TLS, RBAC) with the PhashJob and PhashCronJob CRDs installed and established."""
    for name in ("etcd", "kube-apiserver", "kubectl"):
        require_tool(name)
    plane = ControlPlane(workdir / "cluster").start()
    try:
        plane.kubectl("apply", "--server-side", "-f", str(CRD_FILE), "-f", str(CRONJOB_CRD_FILE))
        plane.kubectl(
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/phashjobs.phashfleet.io",
            "crd/phashcronjobs.phashfleet.io",
        )
        yield plane
    finally:
        plane.stop()


@pytest.fixture
def namespace(control_plane, request) -> str:
    """A fresh namespace named after the test."""
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"t-{slug}-{secrets.token_hex(3)}"
    control_plane.kubectl("create", "namespace", name)
    return name


@pytest.fixture(scope="session")
def redis_server(workdir) -> RedisServer:
    """A password-protected redis-server with AOF persistence, for the whole session."""
    require_tool("redis-server")
    server = RedisServer(workdir / "redis").start()
    yield server
    server.stop()


@pytest.fixture
def redis_env(redis_server) -> dict[str, str]:
    """A flushed Redis and the environment a worker or operator needs to reach it."""
    if not (redis_server.proc and redis_server.proc.alive):
        redis_server.start()
    redis_server.flush()
    return {"PHASHFLEET_REDIS_URL": redis_server.url, "PHASHFLEET_REDIS_PASSWORD": redis_server.password}


@pytest.fixture
def pod_runner(control_plane, workdir):
    """Factory: `pod_runner(namespace, deployment)` follows that Deployment with real processes."""
    runners: list[PodRunner] = []

    def start(namespace: str, deployment: str, **kwargs) -> PodRunner:
        runner = PodRunner(
            control_plane.api_client(), namespace, deployment, workdir / "pods" / f"{namespace}-{deployment}", **kwargs
        ).start()
        runners.append(runner)
        return runner

    yield start
    for runner in runners:
        runner.stop()


@pytest.fixture
def operator(control_plane, workdir):
    """Factory: `operator(namespace, env=..., name=...)` runs `phashfleet operator` as a process."""
    procs: list[OperatorProcess] = []

    def start(
        namespace: str | None,
        *,
        env: dict[str, str] | None = None,
        name: str = "operator",
        kubeconfig: Path | None = None,
        args: tuple[str, ...] = (),
    ) -> OperatorProcess:
        proc = OperatorProcess(
            f"{name}-{namespace or 'all'}",
            kubeconfig or control_plane.kubeconfig,
            workdir / "operators",
            namespace=namespace,
            env=env,
            args=args,
        )
        proc.start()
        procs.append(proc)
        wait_for(lambda: _healthy(proc), timeout=60, what=f"{proc.name} liveness endpoint")
        return proc

    yield start
    for proc in procs:
        proc.stop()


def _healthy(proc: OperatorProcess) -> bool:
    import urllib.request

    if not proc.alive:
        raise RuntimeError(f"{proc.name} exited:\n{proc.log_tail()}")
    with urllib.request.urlopen(f"http://127.0.0.1:{proc.health_port}/healthz", timeout=2) as resp:
        return resp.status == 200
