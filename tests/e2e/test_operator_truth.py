"""The operator on a real apiserver, Redis and worker processes tells the truth about a job: workers that
cannot read the source fail it at once naming the setting, too many failures fail it, an output it cannot
write fails it before hashing, no workers is shown, and a source that answers 503 for a while is waited for."""

from __future__ import annotations

import json
import time

import pytest

from harness.fleet import WORKER, job_status, make_corpus, phash_job, wait_phase, worker_deployment
from harness.outage import outage_server
from harness.wait import wait_for


@pytest.fixture
def make_fleet(control_plane, namespace, redis_server, redis_env, pod_runner, operator, tmp_path, tmp_path_factory):
    """Factory: workers (allowed `worker_roots`) and an operator (`env` on top of the usual) for one namespace."""

    def start(worker_roots: str | None = None, **env: str) -> dict:
        roots = str(tmp_path_factory.getbasetemp())
        control_plane.kubectl(
            "create", "secret", "generic", "redis", f"--from-literal=password={redis_server.password}", "-n", namespace
        )
        control_plane.apply(worker_deployment(namespace, worker_roots or roots, redis_server.url, str(tmp_path)))
        runner = pod_runner(namespace, WORKER)
        op_env = {
            **redis_env,
            "PHASHFLEET_WORKER_DEPLOYMENT": WORKER,
            "PHASHFLEET_WORKER_NAMESPACE": namespace,
            "PHASHFLEET_MIN_REPLICAS": "0",
            "PHASHFLEET_MAX_REPLICAS": "2",
            "PHASHFLEET_IDLE_COOLDOWN": "2",
            "PHASHFLEET_ALLOWED_ROOTS": roots,
            "PHASHFLEET_OUTPUT_ROOTS": str(tmp_path),
            **env,
        }
        return {
            "data": tmp_path / "data",
            "runner": runner,
            "operator": operator(namespace, env=op_env),
            "namespace": namespace,
            "tmp": tmp_path,
        }

    return start


def _condition(status: dict) -> dict:
    return next(c for c in status.get("conditions", []) if c["status"] == "True")


def _events(control_plane, namespace: str) -> list[dict]:
    return json.loads(control_plane.kubectl("get", "events", "-n", namespace, "-o", "json").stdout)["items"]


def test_workers_without_the_source_among_their_roots_fail_the_job_at_once_naming_the_setting(
    control_plane, make_fleet, tmp_path
):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    fleet = make_fleet(worker_roots=str(elsewhere))  # the workers, who list and read the source, may not
    fleet["data"].mkdir()
    for i in range(200):  # never listed, never read
        (fleet["data"] / f"p{i:04d}.jpg").write_bytes(b"\xff\xd8")
    output = fleet["tmp"] / "outside.jsonl"
    control_plane.apply(phash_job("outside", f"file://{fleet['data']}", str(output)), namespace=fleet["namespace"])
    status = wait_phase(control_plane, fleet, "outside", timeout=120)
    condition = _condition(status)
    assert status["phase"] == "Failed" and condition["type"] == "Failed", status
    assert condition["reason"] == "SourceOutsideRoots" and "PHASHFLEET_ALLOWED_ROOTS" in condition["message"]
    assert "source.allowedRoots" in condition["message"] and str(fleet["data"]) in condition["message"]
    assert (status["succeeded"], status["failed"], status["total"]) == (0, 0, 0), "nothing listed, nothing hashed"
    assert not output.exists()
    assert any(
        e["type"] == "Warning" and e["reason"] == "Failed" and "PHASHFLEET_ALLOWED_ROOTS" in e["message"]
        for e in _events(control_plane, fleet["namespace"])
    )


def test_a_job_above_max_failed_percent_ends_failed_with_the_numbers(control_plane, make_fleet):
    fleet = make_fleet()
    truth = make_corpus(fleet["data"], photos=20)  # broken.jpg fails: 1 of 42 files, 2.4%
    control_plane.apply(
        phash_job(
            "strict",
            f"file://{fleet['data']}",
            str(fleet["tmp"] / "strict.jsonl"),
            failurePolicy={"maxFailedPercent": 0.5},
        ),
        namespace=fleet["namespace"],
    )
    status = wait_phase(control_plane, fleet, "strict", timeout=120)
    condition = _condition(status)
    assert status["phase"] == "Failed" and condition["reason"] == "TooManyFailures", status
    assert f"of {truth['files']} files failed" in condition["message"]
    assert "spec.failurePolicy.maxFailedPercent 0.5%" in condition["message"]
    # Immutable like the rest of the spec.
    change = control_plane.kubectl(
        "patch",
        "phj",
        "strict",
        "-n",
        fleet["namespace"],
        "--type=merge",
        "-p",
        '{"spec":{"failurePolicy":{"maxFailedPercent":50}}}',
        check=False,
    )
    assert change.returncode != 0 and "spec.failurePolicy is immutable" in change.stderr


def test_an_output_outside_the_roots_fails_before_any_file_is_hashed(control_plane, make_fleet, redis_server):
    fleet = make_fleet()
    make_corpus(fleet["data"], photos=40)
    control_plane.apply(
        phash_job("early", f"file://{fleet['data']}", "/tmp/phashfleet-early.jsonl"), namespace=fleet["namespace"]
    )
    status = wait_phase(control_plane, fleet, "early", timeout=60)
    condition = _condition(status)
    assert status["phase"] == "Failed" and condition["reason"] == "OutputFailed"
    assert condition["message"].startswith("spec.output.uri:") and "/tmp/phashfleet-early.jsonl" in condition["message"]
    assert status.get("succeeded", 0) == 0 and status.get("failed", 0) == 0  # nothing hashed
    assert not redis_server.client().keys("*early*")  # no job state was ever created
    assert fleet["runner"].max_running() == 0


def test_no_running_worker_is_a_condition_and_an_event_and_the_job_goes_on_when_one_starts(control_plane, make_fleet):
    # Autoscaling off and the Deployment at 0: nothing will start a worker until someone does.
    fleet = make_fleet(PHASHFLEET_AUTOSCALING="none", PHASHFLEET_NO_WORKERS_SECONDS="3")
    truth = make_corpus(fleet["data"], photos=5)
    control_plane.apply(
        phash_job("idle", f"file://{fleet['data']}", str(fleet["tmp"] / "idle.jsonl")), namespace=fleet["namespace"]
    )
    status = wait_for(
        lambda: (
            (s := job_status(control_plane, fleet["namespace"], "idle")).get("conditions")
            and _condition(s)["reason"] == "NoWorkers"
            and s
        ),
        timeout=60,
        interval=0.5,
        what="the NoWorkers condition; operator log:\n" + fleet["operator"].log_tail(),
    )
    condition = _condition(status)
    assert status["phase"] == "Running" and condition["type"] == "Progressing"
    assert "no worker has been running" in condition["message"] and WORKER in condition["message"]
    warnings = [e for e in _events(control_plane, fleet["namespace"]) if e["reason"] == "NoWorkers"]
    assert len(warnings) == 1 and warnings[0]["type"] == "Warning"
    control_plane.kubectl("scale", "deployment", WORKER, "-n", fleet["namespace"], "--replicas=1")
    status = wait_phase(control_plane, fleet, "idle", timeout=120)
    assert status["phase"] == "Succeeded" and status["total"] == truth["files"]
    reasons = [e["reason"] for e in _events(control_plane, fleet["namespace"])]
    assert reasons.count("NoWorkers") == 1 and "WorkersRunning" in reasons


OUTAGE_SECONDS = 20.0  # the outage the issue measured


@pytest.fixture
def outage_site(tmp_path):
    """(server, base URL, folder): an HTTP server that is down until the test sets its `up_at`."""
    root = tmp_path / "www"
    truth = make_corpus(root / "pics", photos=6)
    with outage_server(root) as (server, base):
        yield server, f"{base}/pics/", truth


def test_a_source_that_answers_503_for_a_while_is_waited_for_and_the_job_succeeds(
    control_plane, make_fleet, outage_site
):
    server, uri, truth = outage_site
    fleet = make_fleet()
    server.up_at = time.monotonic() + OUTAGE_SECONDS
    control_plane.apply(phash_job("outage", uri, str(fleet["tmp"] / "outage.jsonl")), namespace=fleet["namespace"])
    during = wait_for(
        lambda: (
            (s := job_status(control_plane, fleet["namespace"], "outage")).get("conditions")
            and _condition(s)["reason"] == "SourceUnavailable"
            and s
        ),
        timeout=30,
        interval=0.3,
        what="the SourceUnavailable condition; operator log:\n" + fleet["operator"].log_tail(),
    )
    assert time.monotonic() < server.up_at, "the outage should still be on"
    assert _condition(during)["type"] == "Progressing" and "503" in _condition(during)["message"]
    assert "retrying in" in _condition(during)["message"]
    status = wait_phase(control_plane, fleet, "outage", timeout=180)
    assert status["phase"] == "Succeeded", status
    assert status["total"] == truth["files"] and status["succeeded"] == truth["files"] - 2
    assert server.refused >= 2  # it was asked more than once: retried, with backoff between
    reasons = [e["reason"] for e in _events(control_plane, fleet["namespace"])]
    assert reasons.count("SourceUnavailable") == 1 and "Recovered" in reasons and "Failed" not in reasons


def test_kubectl_explain_shows_ranges_defaults_and_the_conditions(control_plane):
    def explain(path: str) -> str:
        return " ".join(control_plane.kubectl("explain", path).stdout.split())  # kubectl wraps lines

    # The apiserver publishes a new CRD's OpenAPI a moment after it is established.
    wait_for(
        lambda: control_plane.kubectl("explain", "phj.spec", check=False).returncode == 0,
        timeout=60,
        what="the PhashJob schema in the apiserver's OpenAPI",
    )

    assert "1 to 1000, default 64" in explain("phj.spec.batchSize")
    assert "4 to 32, default 8" in explain("phj.spec.hashSize")
    assert "0 to 20, default 3" in explain("phj.spec.maxRetries")
    assert "0 to 100" in explain("phj.spec.failurePolicy.maxFailedPercent")
    conditions = explain("phj.status.conditions")
    assert "exactly one is True" in conditions and "NoWorkers" in conditions and "WorkerConfiguration" in conditions
    assert "When status last flipped" in explain("phj.status.conditions.lastTransitionTime")
