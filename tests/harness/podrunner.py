"""A stand-in for the kubelet: runs a Deployment's `spec.replicas` as real local processes.

It reads the Deployment's first container (command, args, env with literal values, Secret and
ConfigMap references and the pod's own name/namespace), keeps exactly `spec.replicas` processes
running (starting, restarting the dead, SIGTERM-ing extras), and writes `status.replicas` /
`readyReplicas` back through the status subresource, as the deployment controller would.
"""

from __future__ import annotations

import base64
import os
import secrets
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from kubernetes import client
from kubernetes.client.rest import ApiException

from harness.process import ManagedProcess


@dataclass
class Sample:
    """How many processes ran at one moment."""

    at: float
    desired: int
    running: int


@dataclass
class PodRunner:
    """Runs the processes of one Deployment until stopped; a background thread does the work."""

    api: client.ApiClient
    namespace: str
    deployment: str
    logdir: Path
    interval: float = 0.2
    base_env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    history: list[Sample] = field(default_factory=list)
    exits: list[tuple[str, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.apps = client.AppsV1Api(self.api)
        self.core = client.CoreV1Api(self.api)
        self.pods: dict[str, ManagedProcess] = {}
        self.terminating: dict[str, ManagedProcess] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name=f"podrunner-{self.deployment}", daemon=True)
        self.errors: list[str] = []

    # --- public --------------------------------------------------------------------------------
    def start(self) -> PodRunner:
        """Start following the Deployment."""
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Stop following, and stop every process it runs (SIGTERM, then SIGKILL after `timeout`)."""
        self._stop.set()
        self._thread.join(timeout=10)
        with self._lock:
            for proc in [*self.pods.values(), *self.terminating.values()]:
                proc.stop(timeout)
            self.pods.clear()
            self.terminating.clear()

    def running(self) -> int:
        """Processes running now (not counting ones that were asked to stop)."""
        with self._lock:
            return sum(1 for p in self.pods.values() if p.alive)

    def pids(self) -> list[int]:
        """Pids of the running processes."""
        with self._lock:
            return [p.pid for p in self.pods.values() if p.alive]

    def kill_one(self, sig: int = signal.SIGKILL, pid: int | None = None) -> int | None:
        """Send `sig` to one running process (a random one unless `pid`); return its pid."""
        candidates = self.pids()
        if not candidates:
            return None
        target = pid if pid in candidates else secrets.choice(candidates)
        if sig == signal.SIGKILL:
            os.killpg(target, sig)  # a killed container loses every process in it, children included
        else:
            os.kill(target, sig)  # other signals go to PID 1 only, as the kubelet sends them
        return target

    def signal_all(self, sig: int) -> list[int]:
        """Send `sig` to every running process at once (a rolling update's SIGTERM)."""
        pids = self.pids()
        for pid in pids:
            os.kill(pid, sig)
        return pids

    def max_running(self) -> int:
        """The most processes seen running at once."""
        return max((s.running for s in self.history), default=0)

    def log_tail(self, lines: int = 20) -> str:
        """The end of every process log, for failure messages."""
        parts = []
        for path in sorted(self.logdir.glob("*.log")):
            tail = "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
            parts.append(f"== {path.name}\n{tail}")
        return "\n".join(parts)

    # --- the loop ------------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._sync_once()
            except Exception as exc:  # noqa: BLE001 - an apiserver restart must not end the runner
                self.errors.append(repr(exc))
            self._stop.wait(self.interval)

    def _sync_once(self) -> None:
        try:
            dep = self.apps.read_namespaced_deployment(self.deployment, self.namespace)
        except ApiException as exc:
            if exc.status == 404:
                self._scale_to(0, None)
                return
            raise
        desired = dep.spec.replicas if dep.spec.replicas is not None else 1
        self._scale_to(desired, dep)
        running = self.running()
        self.history.append(Sample(time.monotonic(), desired, running))
        status = dep.status
        if (
            (status.replicas or 0) != running
            or (status.ready_replicas or 0) != running
            or status.observed_generation != dep.metadata.generation
        ):
            body = {
                "status": {
                    "replicas": running,
                    "readyReplicas": running,
                    "availableReplicas": running,
                    "updatedReplicas": running,
                    "observedGeneration": dep.metadata.generation,
                }
            }
            self.apps.patch_namespaced_deployment_status(self.deployment, self.namespace, body)

    def _scale_to(self, desired: int, dep) -> None:
        with self._lock:
            for name, proc in list(self.pods.items()):
                if not proc.alive:
                    self.exits.append((name, proc.proc.returncode))
                    del self.pods[name]
            for name, proc in list(self.terminating.items()):
                if not proc.alive:
                    self.exits.append((name, proc.proc.wait()))
                    del self.terminating[name]
            while len(self.pods) > desired:
                name = sorted(self.pods)[-1]  # the newest goes first, like a ReplicaSet scale-down
                proc = self.pods.pop(name)
                proc.signal(signal.SIGTERM)
                self.terminating[name] = proc
            while len(self.pods) < desired and dep is not None:
                name = f"{self.deployment}-{time.time_ns():x}"
                proc = ManagedProcess(name, self._argv(dep), self.logdir / f"{name}.log", env=self._env(dep, name))
                proc.start()
                self.pods[name] = proc

    def _container(self, dep):
        return dep.spec.template.spec.containers[0]

    def _argv(self, dep) -> list[str]:
        container = self._container(dep)
        argv = [*(container.command or []), *(container.args or [])]
        if not argv:
            raise ValueError(f"deployment {self.deployment} has no command: the pod runner cannot run an image")
        return argv

    def _env(self, dep, pod_name: str) -> dict[str, str]:
        declared: dict[str, str] = {}
        for var in self._container(dep).env or []:
            if var.value is not None:
                declared[var.name] = var.value
            elif var.value_from is not None:
                resolved = self._resolve(var.value_from, pod_name)
                if resolved is not None:
                    declared[var.name] = resolved
        # An emptyDir is the pod's own: give each process a fresh folder for every emptyDir mount and
        # point the container's own env values under that mount path at it (a shared host path would mix
        # pods' files). Only what the manifest declares: the inherited PATH or HOME may lie under /tmp too.
        empty_dirs = {v.name for v in dep.spec.template.spec.volumes or [] if v.empty_dir is not None}
        for mount in self._container(dep).volume_mounts or []:
            if mount.name in empty_dirs:
                private = self.logdir / "emptydirs" / pod_name / mount.name
                private.mkdir(parents=True, exist_ok=True)
                for name, value in declared.items():
                    if value == mount.mount_path or value.startswith(mount.mount_path.rstrip("/") + "/"):
                        declared[name] = str(private) + value[len(mount.mount_path.rstrip("/")) :]
        return {**self.base_env, **declared}

    def _resolve(self, source, pod_name: str) -> str | None:
        if source.secret_key_ref is not None:
            ref = source.secret_key_ref
            secret = self.core.read_namespaced_secret(ref.name, self.namespace)
            data = (secret.data or {}).get(ref.key)
            return base64.b64decode(data).decode() if data is not None else None
        if source.config_map_key_ref is not None:
            ref = source.config_map_key_ref
            return (self.core.read_namespaced_config_map(ref.name, self.namespace).data or {}).get(ref.key)
        if source.field_ref is not None:
            return {"metadata.name": pod_name, "metadata.namespace": self.namespace}.get(source.field_ref.field_path)
        return None
