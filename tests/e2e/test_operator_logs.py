"""The operator's log tells a job's story (JSON lines when asked) and says what will keep jobs from running."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from harness.fleet import job_status, make_corpus, phash_job, wait_phase
from harness.operator_proc import OperatorProcess, phashfleet_argv
from harness.ports import free_port
from harness.wait import wait_for

JSON_LOGS = [{"operator_args": ("--log-format", "json")}]


def _records(operator) -> list[dict]:
    """Every line the operator printed, each parsed as JSON (the harness's own "--- start" lines aside)."""
    lines = operator.log_path.read_text(errors="replace").splitlines()
    return [json.loads(line) for line in lines if line.strip() and not line.startswith("--- start")]


def _about(records: list[dict], name: str) -> list[dict]:
    return [r for r in records if r.get("name") == name and r.get("logger") == "phashfleet.operator"]


def _wait_line(operator, name: str, prefix: str, level: str = "info") -> dict:
    def found():
        hits = [r for r in _about(_records(operator), name) if r["message"].startswith(prefix)]
        return hits and hits[-1]

    record = wait_for(
        found, timeout=60, interval=0.3, what=f"a log line {prefix!r} for {name}:\n" + operator.log_tail()
    )
    assert record["level"] == level, record
    return record


@pytest.mark.parametrize("fleet", JSON_LOGS, indirect=True)
def test_each_step_of_a_job_is_a_json_log_line(control_plane, fleet, redis_server):
    ns, op = fleet["namespace"], fleet["operator"]
    truth = make_corpus(fleet["data"], photos=3)
    control_plane.apply(
        phash_job("photos", f"file://{fleet['data']}", str(fleet["tmp"] / "photos.jsonl"), suspend=True), namespace=ns
    )
    started = _wait_line(op, "photos", "Started: hashing with phash")
    assert started["namespace"] == ns and started["reason"] == "Started"
    _wait_line(op, "photos", "Suspended: ")  # a suspended job is not even listed
    redis_server.flush()  # Redis loses the job's state while it is suspended
    _wait_line(op, "photos", "StateLost: ", level="warning")
    control_plane.kubectl("patch", "phj", "photos", "-n", ns, "--type=merge", "-p", '{"spec":{"suspend":false}}')
    _wait_line(op, "photos", "Resumed: ")
    _wait_line(op, "photos", "asked the workers to list shards 0 of the source")
    assert _wait_line(op, "photos", "the workers listed ")["message"] == f"the workers listed {truth['files']} files"
    assert wait_phase(control_plane, fleet, "photos")["phase"] == "Succeeded"
    finished = _wait_line(op, "photos", "finished Succeeded")
    assert (finished["total"], finished["ok"], finished["failed"] + finished["skipped"]) == (
        truth["files"],
        truth["files"] - 2,
        2,
    )
    _wait_line(op, "photos", "Completed: ")

    missing = fleet["tmp"] / "nowhere"
    control_plane.apply(phash_job("lost", f"file://{missing}", str(fleet["tmp"] / "lost.jsonl")), namespace=ns)
    failed = _wait_line(op, "lost", "Failed: ", level="warning")
    assert str(missing) in failed["message"] and job_status(control_plane, ns, "lost")["phase"] == "Failed"
    # kopf's own lines come through the same handler, in the same format, naming the object too.
    assert any(r["logger"].startswith("kopf") and r.get("name") == "photos" for r in _records(op))
    # kopf names handlers after their own function, not the metrics wrapper around it.
    handled = {r["message"] for r in _records(op) if r["message"].startswith("Handler '")}
    assert handled and not [m for m in handled if "<locals>" in m], handled


def test_start_up_warns_once_about_missing_workers_roots_and_redis(control_plane, namespace, workdir):
    env = {
        **os.environ,
        "PHASHFLEET_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
        "PHASHFLEET_WORKER_DEPLOYMENT": "absent",
        "PHASHFLEET_WORKER_NAMESPACE": namespace,
    }
    env.pop("PHASHFLEET_ALLOWED_ROOTS", None)
    op = OperatorProcess(
        f"warnings-{namespace}", control_plane.kubeconfig, workdir / "operators", namespace=namespace, env=env
    )
    op.start()
    try:
        expected = {
            "worker Deployment": f"the worker Deployment {namespace}/absent does not exist",
            "roots": "PHASHFLEET_ALLOWED_ROOTS is empty",
            "redis": "cannot be reached",
        }

        def warnings():
            text = op.log_path.read_text(errors="replace")
            return all(line in text for line in expected.values())

        wait_for(warnings, timeout=60, interval=0.3, what="the start-up warnings:\n" + op.log_tail())
        # Housekeeping pings Redis every second: watch a few seconds of it say nothing more.
        time.sleep(3)  # the observation window itself, not a wait for a condition
        lines = [line for line in op.log_path.read_text(errors="replace").splitlines() if " WARNING " in line]
        for what, text in expected.items():
            assert sum(text in line for line in lines) == 1, (what, lines)
        assert op.alive
    finally:
        op.stop()


def test_without_a_redis_url_the_operator_exits_with_one_line(control_plane, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHASHFLEET_REDIS")}
    argv = phashfleet_argv(
        "operator", "--kubeconfig", str(control_plane.kubeconfig), "--namespace", "default", "--log-format", "json"
    )
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1, done
    (line,) = [line for line in done.stderr.splitlines() if line.strip()]
    record = json.loads(line)
    assert record["level"] == "critical" and "PHASHFLEET_REDIS_URL" in record["message"], record
    assert "Traceback" not in done.stderr and done.stdout == ""
