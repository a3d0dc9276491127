"""Run `phashfleet operator` as a real process against the harness's kubeconfig."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from harness.ports import free_port
from harness.process import ManagedProcess


def phashfleet_argv(*args: str) -> list[str]:
    """argv for the `phashfleet` console script of the environment running the tests."""
    script = Path(sys.executable).parent / "phashfleet"
    return [str(script) if script.exists() else shutil.which("phashfleet") or "phashfleet", *args]


class OperatorProcess(ManagedProcess):
    """One operator replica with its own metrics and health ports; kill/restart come from ManagedProcess."""

    def __init__(
        self,
        name: str,
        kubeconfig: Path,
        logdir: Path,
        *,
        namespace: str | None,
        env: dict[str, str] | None = None,
        args: tuple[str, ...] = (),
    ) -> None:
        self.metrics_port = free_port()
        self.health_port = free_port()
        argv = phashfleet_argv(
            "operator",
            "--kubeconfig",
            str(kubeconfig),
            "--metrics-port",
            str(self.metrics_port),
            "--health-port",
            str(self.health_port),
            *(["--namespace", namespace] if namespace else ["--all-namespaces"]),
            *args,
        )
        super().__init__(name, argv, logdir / f"{name}.log", env={**os.environ, **(env or {})})

    @property
    def metrics_url(self) -> str:
        """Where this replica serves Prometheus metrics."""
        return f"http://127.0.0.1:{self.metrics_port}/metrics"
