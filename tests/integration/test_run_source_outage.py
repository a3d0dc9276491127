"""`phashfleet run` waits out a source that cannot be reached for a while, like the operator, and a source
that is not there fails the run with the status the operator would write."""

from __future__ import annotations

import json
import subprocess
import time

import yaml

from harness.fleet import make_corpus
from harness.operator_proc import phashfleet_argv
from harness.outage import outage_server

OUTAGE_SECONDS = 2.5


def _manifest(tmp_path, uri: str):
    path = tmp_path / "job.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "phashfleet.io/v1alpha1",
                "kind": "PhashJob",
                "metadata": {"name": "outage"},
                "spec": {"source": {"uri": uri}},
            }
        )
    )
    return path


def _run(manifest) -> subprocess.CompletedProcess:
    return subprocess.run(
        phashfleet_argv("run", str(manifest), "--jobs", "1"), capture_output=True, text=True, timeout=120
    )


def test_a_run_whose_http_source_answers_503_for_a_while_succeeds(tmp_path):
    truth = make_corpus(tmp_path / "www" / "pics", photos=3)
    with outage_server(tmp_path / "www") as (server, base):
        server.up_at = time.monotonic() + OUTAGE_SECONDS
        done = _run(_manifest(tmp_path, f"{base}/pics/"))
        refused = server.refused
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)
    assert (status["phase"], status["total"], status["succeeded"]) == ("Succeeded", truth["files"], 6), status
    assert refused > 0 and "trying again in" in done.stderr, done.stderr


def test_a_run_whose_source_is_missing_fails_with_the_operators_condition(tmp_path):
    done = _run(_manifest(tmp_path, str(tmp_path / "nowhere")))
    assert done.returncode == 1, done.stderr
    status = json.loads(done.stdout)
    (failed,) = [c for c in status["conditions"] if c["status"] == "True"]
    assert (status["phase"], failed["type"], failed["reason"]) == ("Failed", "Failed", "SourceNotFound"), status
    assert "nowhere" in failed["message"]
