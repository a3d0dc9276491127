"""Fixtures shared by the integration tests: real `phashfleet worker` processes on the test's Redis."""

from __future__ import annotations

import os

import pytest

from harness.operator_proc import phashfleet_argv
from harness.process import ManagedProcess


@pytest.fixture
def start_worker(redis_env, tmp_path):
    """Factory for `phashfleet worker` processes reading files under `roots` (extra env on top); all stopped
    at the end. Each logs to tmp_path/<name><n>.log."""
    procs: list[ManagedProcess] = []

    def start(roots: str = "", name: str = "worker", **extra_env: str) -> ManagedProcess:
        env = {**os.environ, **redis_env, "PHASHFLEET_ALLOWED_ROOTS": roots, **extra_env}
        proc = ManagedProcess(
            f"{name}{len(procs)}",
            phashfleet_argv("worker", "--metrics-port", "0"),
            tmp_path / f"{name}{len(procs)}.log",
            env=env,
        )
        proc.start()
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.kill()
