"""`phashfleet worker --log-format json`: Dramatiq's main process and its worker processes all log JSON lines."""

from __future__ import annotations

import json
import os

from harness.operator_proc import phashfleet_argv
from harness.process import ManagedProcess
from harness.wait import wait_for


def test_every_worker_process_logs_json_lines_at_the_chosen_level(redis_env, tmp_path):
    env = {**os.environ, **redis_env, "PHASHFLEET_LOG_LEVEL": "debug"}
    worker = ManagedProcess(
        "worker",
        phashfleet_argv("worker", "--metrics-port", "0", "--log-format", "json"),
        tmp_path / "worker.log",
        env=env,
    )
    worker.start()
    try:

        def records():
            lines = worker.log_path.read_text(errors="replace").splitlines()[1:]  # after the harness's "--- start"
            return [json.loads(line) for line in lines if line.strip()]

        wait_for(
            lambda: any(r["message"] == "Worker process is ready for action." for r in records()),
            timeout=60,
            interval=0.3,
            what="the worker process to be ready:\n" + worker.log_tail(),
        )
        assert worker.stop() == 0
        loggers = {r["logger"] for r in records()}
        assert {"dramatiq.MainProcess", "dramatiq.WorkerProcess(0)"} <= loggers, loggers
        assert "debug" in {r["level"] for r in records()}  # PHASHFLEET_LOG_LEVEL reached the worker processes
    finally:
        worker.kill()
