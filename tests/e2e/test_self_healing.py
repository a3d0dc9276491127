"""Faults mid-job: each job still ends Succeeded with every file recorded exactly once."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from harness.fleet import job_status, make_corpus, phash_job, wait_phase
from harness.wait import wait_for


def _start_job(control_plane, fleet, corpus, name: str, **spec) -> tuple[dict, object]:
    folder, truth = corpus
    output = fleet["tmp"] / f"{name}.jsonl"
    control_plane.apply(
        phash_job(name, f"file://{folder}", str(output), batchSize=2, **spec), namespace=fleet["namespace"]
    )
    return truth, output


def _mid_job(control_plane, fleet, name: str) -> dict:
    """Wait until the job has records but is far from done."""
    return wait_for(
        lambda: (s := job_status(control_plane, fleet["namespace"], name)).get("succeeded", 0) >= 4 and s,
        timeout=120,
        interval=0.2,
        what=f"{name} part-way",
    )


def _assert_exact(status: dict, truth: dict, output) -> None:
    assert status["phase"] == "Succeeded", status
    assert status["total"] == truth["files"]
    assert status["succeeded"] + status["failed"] + status["skipped"] == truth["files"]
    assert status["succeeded"] == truth["files"] - 2
    paths = [json.loads(line)["path"] for line in output.read_text().splitlines()]
    assert len(paths) == len(set(paths)) == truth["files"]


FAULTS = ["operator-killed", "redis-flushed", "redis-restarted-without-data", "redis-restarted-with-aof"]


@pytest.mark.parametrize("fault", FAULTS)
def test_job_survives(control_plane, fleet, big_corpus, redis_server, fault):
    truth, output = _start_job(control_plane, fleet, big_corpus, "survivor")
    before = _mid_job(control_plane, fleet, "survivor")
    assert before["phase"] == "Running"
    hit = time.monotonic()
    if fault == "operator-killed":
        fleet["operator"].kill()
        fleet["operator"].start()
    elif fault == "redis-flushed":
        redis_server.flush()
    elif fault == "redis-restarted-without-data":
        redis_server.restart(persist=False)
    else:
        redis_server.restart(persist=True)
    status = wait_phase(control_plane, fleet, "survivor")
    print(f"\n{fault}: job finished {time.monotonic() - hit:.1f}s after the fault")
    _assert_exact(status, truth, output)


def test_suspend_stops_handing_out_and_resume_finishes(control_plane, fleet, big_corpus):
    truth, output = _start_job(control_plane, fleet, big_corpus, "pausable")
    _mid_job(control_plane, fleet, "pausable")
    ns = fleet["namespace"]
    control_plane.kubectl("patch", "phj", "pausable", "-n", ns, "--type=merge", "-p", '{"spec":{"suspend":true}}')
    wait_phase(control_plane, fleet, "pausable", phases=("Suspended",), timeout=60)
    # In-flight batches finish, then nothing more is handed out: the count settles below the total.
    settled = wait_for(lambda: _settled(control_plane, ns), timeout=60, what="counts to stop moving")
    assert settled < truth["files"]
    control_plane.kubectl("patch", "phj", "pausable", "-n", ns, "--type=merge", "-p", '{"spec":{"suspend":false}}')
    _assert_exact(wait_phase(control_plane, fleet, "pausable"), truth, output)
    reasons = {
        e["reason"] for e in json.loads(control_plane.kubectl("get", "events", "-n", ns, "-o", "json").stdout)["items"]
    }
    assert {"Suspended", "Resumed", "Completed"} <= reasons


_last: dict = {}


def _settled(control_plane, namespace: str) -> int | None:
    """The done count once it has stayed the same over three seconds, else None."""
    status = job_status(control_plane, namespace, "pausable")
    done = status.get("succeeded", 0) + status.get("failed", 0) + status.get("skipped", 0)
    now = time.monotonic()
    if _last.get("done") != done:
        _last.update(done=done, since=now)
        return None
    return done if now - _last["since"] >= 3 else None


def _copies(corpus: Path, folder: Path, count: int) -> Path:
    """`count` hard-linked copies of the corpus's files in subfolders of `folder`: a longer job, no more disk."""
    for i in range(count):
        (folder / f"copy{i}").mkdir(parents=True)
        for file in corpus.iterdir():
            if file.is_file():
                os.link(file, folder / f"copy{i}" / file.name)
    return folder


def test_high_priority_job_overtakes_a_low_one(control_plane, fleet, big_corpus):
    ns = fleet["namespace"]
    small = fleet["tmp"] / "small"
    make_corpus(small, photos=4, size=(1600, 1200))
    # Long enough that it is still hashing when the high job, listed and collected by the same workers, is done.
    low = _copies(big_corpus[0], fleet["tmp"] / "low", 10)
    control_plane.apply(
        phash_job("low", f"file://{low}", str(fleet["tmp"] / "low.jsonl"), batchSize=2, priority="low"),
        namespace=ns,
    )
    _mid_job(control_plane, fleet, "low")
    control_plane.apply(
        phash_job("high", f"file://{small}", str(fleet["tmp"] / "high.jsonl"), batchSize=2, priority="high"),
        namespace=ns,
    )
    high = wait_phase(control_plane, fleet, "high")
    low_when_high_done = job_status(control_plane, ns, "low")
    assert high["phase"] == "Succeeded"
    assert low_when_high_done["phase"] == "Running", "the high job finished while the low one still ran"
    assert wait_phase(control_plane, fleet, "low")["phase"] == "Succeeded"
