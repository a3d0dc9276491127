"""A PhashJob applied with kubectl runs to Succeeded on the real control plane, real Redis and real workers."""

from __future__ import annotations

import json
from pathlib import Path

from harness.fleet import job_status, make_corpus, phash_job, wait_phase
from harness.wait import wait_for


def test_job_runs_to_success_with_exact_counts_groups_and_scaling(control_plane, fleet):
    truth = make_corpus(fleet["data"], photos=20)
    output = fleet["tmp"] / "out" / "result.jsonl"
    output.parent.mkdir()
    control_plane.apply(phash_job("photos", f"file://{fleet['data']}", str(output)), namespace=fleet["namespace"])
    status = wait_phase(control_plane, fleet, "photos")
    assert status["phase"] == "Succeeded", status
    assert status["total"] == truth["files"]
    assert status["succeeded"] == truth["files"] - 2
    assert status["failed"] + status["skipped"] == 2
    assert status["progress"] == "100%"
    assert status["duplicateGroups"] >= 15 and status["duplicateFiles"] >= 30
    records = [json.loads(line) for line in output.read_text().splitlines()]
    assert len(records) == truth["files"] and len({r["path"] for r in records}) == truth["files"]
    by_name = {Path(r["path"]).name: r for r in records}
    assert by_name["photo 003.jpg"]["group"] is not None
    assert by_name["photo 003.jpg"]["group"] == by_name["photo 003 copy.png"]["group"]
    assert by_name["broken.jpg"]["status"] == "failed" and by_name["broken.jpg"]["reason"]
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert conditions["Complete"] == "True" and conditions["Progressing"] == "False"
    # The operator scaled the workers up for the job and back to zero once idle.
    assert fleet["runner"].max_running() >= 1
    wait_for(lambda: fleet["runner"].running() == 0, timeout=60, what="workers scaled back to zero")
    events = control_plane.kubectl("get", "events", "-n", fleet["namespace"], "-o", "json").stdout
    reasons = {e["reason"] for e in json.loads(events)["items"]}
    assert {"Started", "Completed"} <= reasons


def test_deleting_a_job_removes_its_redis_state(control_plane, fleet, redis_server):
    make_corpus(fleet["data"], photos=5)
    output = fleet["tmp"] / "gone.jsonl"
    control_plane.apply(
        phash_job("doomed", f"file://{fleet['data']}", str(output), suspend=True), namespace=fleet["namespace"]
    )
    wait_for(
        lambda: job_status(control_plane, fleet["namespace"], "doomed").get("phase") == "Suspended",
        timeout=60,
        what="job suspended",
    )
    client = redis_server.client()
    assert any(b".doomed." in k for k in client.keys("phashfleet:job:*"))
    control_plane.kubectl("delete", "phj", "doomed", "-n", fleet["namespace"], "--wait=true", "--timeout=60s")
    wait_for(
        lambda: not any(b".doomed." in k for k in client.keys("phashfleet:job:*")),
        timeout=30,
        what="the job's Redis keys removed",
    )


def test_a_job_with_no_matching_files_ends_with_a_clear_condition(control_plane, fleet):
    (fleet["data"]).mkdir(parents=True)
    (fleet["data"] / "readme.txt").write_text("no images here")
    control_plane.apply(
        phash_job("empty", f"file://{fleet['data']}", str(fleet["tmp"] / "empty.jsonl")), namespace=fleet["namespace"]
    )
    status = wait_phase(control_plane, fleet, "empty", timeout=60)
    complete = {c["type"]: c for c in status["conditions"]}["Complete"]
    assert status["phase"] == "Succeeded" and status["total"] == 0
    assert complete["status"] == "True" and complete["reason"] == "NoFiles"


def test_a_job_whose_every_file_fails_ends_failed_not_succeeded(control_plane, fleet):
    fleet["data"].mkdir(parents=True)
    for i in range(3):
        (fleet["data"] / f"broken {i}.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    output = fleet["tmp"] / "all-failed.jsonl"
    control_plane.apply(phash_job("hopeless", f"file://{fleet['data']}", str(output)), namespace=fleet["namespace"])
    status = wait_phase(control_plane, fleet, "hopeless", timeout=120)
    by_type = {c["type"]: c for c in status["conditions"]}
    assert status["phase"] == "Failed" and (status["total"], status["failed"], status["succeeded"]) == (3, 3, 0)
    assert by_type["Failed"]["status"] == "True" and by_type["Failed"]["reason"] == "AllFilesFailed"
    assert by_type["Complete"]["status"] == "False"
    assert len(output.read_text().splitlines()) == 3  # the records say why each file failed
    events = json.loads(control_plane.kubectl("get", "events", "-n", fleet["namespace"], "-o", "json").stdout)
    assert any(e["reason"] == "Failed" and e["type"] == "Warning" for e in events["items"])


def test_an_unreachable_source_fails_with_a_reason(control_plane, fleet):
    missing = fleet["tmp"] / "does-not-exist"
    control_plane.apply(
        phash_job("nowhere", f"file://{missing}", str(fleet["tmp"] / "x.jsonl")), namespace=fleet["namespace"]
    )
    status = wait_phase(control_plane, fleet, "nowhere", timeout=60)
    failed = {c["type"]: c for c in status["conditions"]}["Failed"]
    assert status["phase"] == "Failed"
    assert failed["status"] == "True" and failed["reason"] == "SourceNotFound" and str(missing) in failed["message"]


def test_a_source_outside_the_allowed_roots_fails(control_plane, fleet):
    control_plane.apply(phash_job("escape", "file:///etc", str(fleet["tmp"] / "x.jsonl")), namespace=fleet["namespace"])
    status = wait_phase(control_plane, fleet, "escape", timeout=60)
    failed = {c["type"]: c for c in status["conditions"]}["Failed"]
    assert status["phase"] == "Failed" and failed["reason"] == "SourceOutsideRoots"


def test_output_outside_the_allowed_roots_fails_and_writes_nothing(control_plane, fleet):
    make_corpus(fleet["data"], photos=2)
    control_plane.apply(
        phash_job("leak", f"file://{fleet['data']}", "/tmp/phashfleet-leak.jsonl"), namespace=fleet["namespace"]
    )
    status = wait_phase(control_plane, fleet, "leak", timeout=120)
    failed = {c["type"]: c for c in status["conditions"]}["Failed"]
    assert status["phase"] == "Failed" and failed["reason"] == "OutputFailed"
    assert not Path("/tmp/phashfleet-leak.jsonl").exists()


def test_finished_job_state_expires_after_its_ttl(control_plane, fleet, redis_server):
    make_corpus(fleet["data"], photos=2)
    control_plane.apply(
        phash_job("brief", f"file://{fleet['data']}", str(fleet["tmp"] / "brief.jsonl"), ttlSecondsAfterFinished=2),
        namespace=fleet["namespace"],
    )
    assert wait_phase(control_plane, fleet, "brief")["phase"] == "Succeeded"
    client = redis_server.client()
    wait_for(lambda: not client.keys("phashfleet:job:*.brief.*"), timeout=30, what="job state expired")


def test_the_redis_password_never_leaks(control_plane, fleet, redis_server):
    make_corpus(fleet["data"], photos=3)
    (fleet["data"] / "broken.jpg").write_bytes(b"\xff\xd8 broken")
    control_plane.apply(
        phash_job("secretive", f"file://{fleet['data']}", str(fleet["tmp"] / "s.jsonl")), namespace=fleet["namespace"]
    )
    assert wait_phase(control_plane, fleet, "secretive")["phase"] == "Succeeded"
    password = redis_server.password
    job = control_plane.kubectl("get", "phj", "secretive", "-n", fleet["namespace"], "-o", "json").stdout
    events = control_plane.kubectl("get", "events", "-n", fleet["namespace"], "-o", "json").stdout
    import urllib.request

    metrics = urllib.request.urlopen(fleet["operator"].metrics_url, timeout=5).read().decode()
    logs = fleet["operator"].log_path.read_text(errors="replace") + fleet["runner"].log_tail(lines=10_000)
    for where, text in (("status", job), ("events", events), ("metrics", metrics), ("logs", logs)):
        assert password not in text, f"the Redis password appears in {where}"
    # Metric labels stay bounded: job names, never file paths.
    assert str(fleet["data"]) not in metrics
