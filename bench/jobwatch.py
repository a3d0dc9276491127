"""Benchmarks' view of PhashJobs on a real apiserver: a watch that times each phase and counts status writes,
and the operator's health check."""

from __future__ import annotations

import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from typing import Any

from common import BenchError
from harness.operator_proc import OperatorProcess

GROUP, VERSION, PLURAL = "phashfleet.io", "v1alpha1", "phashjobs"
ENDED = ("Succeeded", "Failed")


class JobWatch:
    """Watches the PhashJobs of a namespace: per name its last status, when each phase was first seen,
    and how many MODIFIED events it had (all of them, and those that changed `.status`)."""

    def __init__(self, api_client: Any, namespace: str) -> None:
        from kubernetes import client

        self.api = client.CustomObjectsApi(api_client)
        self.namespace = namespace
        self.seen: dict[str, dict[str, float]] = {}
        self.status: dict[str, dict[str, Any]] = {}
        self.modified: dict[str, int] = {}
        self.status_modified: dict[str, int] = {}
        #: Per name: (monotonic time, event type, what changed: "status" or "metadata", phase).
        self.events: dict[str, list[tuple[float, str, str, str]]] = {}
        self.changed = threading.Condition()
        self._stop = threading.Event()
        listed = self.api.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)
        self._version = listed["metadata"]["resourceVersion"]
        self._thread = threading.Thread(target=self._run, name="job-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        from kubernetes import watch

        while not self._stop.is_set():
            try:
                for event in watch.Watch().stream(
                    self.api.list_namespaced_custom_object,
                    GROUP,
                    VERSION,
                    self.namespace,
                    PLURAL,
                    resource_version=self._version,
                    timeout_seconds=30,
                ):
                    self._record(event["type"], event["object"], time.monotonic())
                    if self._stop.is_set():
                        return
            except Exception as exc:  # noqa: BLE001 - the watch resumes from the last version it saw
                if not self._stop.is_set():
                    print(f"watch restarted: {exc}", file=sys.stderr)
                    time.sleep(0.2)  # a pause before reconnecting, not a wait for a condition

    def _record(self, kind: str, obj: dict[str, Any], at: float) -> None:
        self._version = obj["metadata"]["resourceVersion"]
        name, status = obj["metadata"]["name"], obj.get("status") or {}
        with self.changed:
            what = "status" if status != self.status.get(name, {}) else "metadata"
            if kind == "MODIFIED":
                self.modified[name] = self.modified.get(name, 0) + 1
                if what == "status":
                    self.status_modified[name] = self.status_modified.get(name, 0) + 1
            self.events.setdefault(name, []).append((at, kind, what, str(status.get("phase") or "")))
            if status.get("phase"):
                self.seen.setdefault(name, {}).setdefault(status["phase"], at)
            self.status[name] = status
            self.changed.notify_all()

    def wait_ended(self, names: list[str], timeout: float, alive: Callable[[], Any] | None = None) -> dict[str, Any]:
        """Block until every job in `names` is seen Succeeded or Failed (calling `alive()`, if given, between
        events); return their statuses by name."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while not all(any(p in self.seen.get(n, {}) for p in ENDED) for n in names):
                if alive is not None:
                    alive()
                left = deadline - time.monotonic()
                if left <= 0:
                    stuck = {n: self.status.get(n, {}).get("phase") for n in names}
                    raise BenchError(f"jobs did not end within {timeout:.0f}s: {stuck}")
                self.changed.wait(min(left, 2.0))
            return {n: self.status[n] for n in names}

    def stop(self) -> None:
        """Stop watching (the thread ends with its current stream)."""
        self._stop.set()


def operator_healthy(proc: OperatorProcess) -> bool:
    """True once the operator answers /healthz; raises when its process has exited."""
    if not proc.alive:
        raise BenchError(f"the operator exited:\n{proc.log_tail()}")
    with urllib.request.urlopen(f"http://127.0.0.1:{proc.health_port}/healthz", timeout=2) as resp:
        return resp.status == 200
