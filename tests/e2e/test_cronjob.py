"""PhashCronJobs on the real control plane, real Redis and real workers: a run a minute, restarts, concurrency, history.

Each test waits for real minute boundaries (schedule "* * * * *"), so each combines the checks that the
same minutes can show.
"""

from __future__ import annotations

import datetime as dt
import json
import urllib.request

from harness.fleet import job_status
from harness.synthetic import photo_like
from harness.wait import wait_for

LABEL = "phashfleet.io/cronjob"
#: A run a minute: the next one is due within 60 s, created within the operator's 5 s tick.
MINUTE = 90


def _cronjob(name: str, template: dict, **spec) -> dict:
    return {
        "apiVersion": "phashfleet.io/v1alpha1",
        "kind": "PhashCronJob",
        "metadata": {"name": name},
        "spec": {"schedule": "* * * * *", "jobTemplate": template, **spec},
    }


def _runs(cp, namespace: str, cronjob: str) -> dict[str, dict]:
    """The PhashJobs labelled as runs of `cronjob`, by name."""
    items = cp.get_json("phj", "-l", f"{LABEL}={cronjob}", namespace=namespace)["items"]
    return {j["metadata"]["name"]: j for j in items}


def _events(cp, namespace: str, cronjob: str) -> list[dict]:
    items = cp.get_json("events", namespace=namespace)["items"]
    return [
        e for e in items if e["involvedObject"]["kind"] == "PhashCronJob" and e["involvedObject"]["name"] == cronjob
    ]


def _minute(run: str) -> int:
    return int(run.rsplit("-", 1)[1])


def _photos(folder, count: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        photo_like(320, 240, seed=100 + i).save(folder / f"photo {i}.jpg", quality=90)


def _healthy(op) -> bool:
    with urllib.request.urlopen(f"http://127.0.0.1:{op.health_port}/healthz", timeout=2) as resp:
        return resp.status == 200


def test_a_run_a_minute_once_across_a_restart_incremental_and_pruned(control_plane, fleet):
    """One PhashJob a minute, owned by its PhashCronJob; an operator killed right after a run's creation
    does not create it again; the second run of the unchanged folder serves every file from the content
    cache; history limits delete the older Succeeded and Failed runs."""
    cp, ns, op = control_plane, fleet["namespace"], fleet["operator"]
    _photos(fleet["data"], 6)
    output = fleet["tmp"] / "nightly.jsonl"
    template = {
        "metadata": {"labels": {"team": "archive"}},
        "spec": {"source": {"uri": f"file://{fleet['data']}"}, "batchSize": 4, "output": {"uri": str(output)}},
    }
    cp.apply(_cronjob("nightly", template, successfulJobsHistoryLimit=1), namespace=ns)
    # A second one beside it whose every run fails (its folder does not exist): the failed history limit.
    broken = {"spec": {"source": {"uri": f"file://{fleet['data']}/missing"}}}
    cp.apply(_cronjob("broken", broken, concurrencyPolicy="Allow", failedJobsHistoryLimit=1), namespace=ns)
    cronjob = cp.get_json("phcj", "nightly", namespace=ns)

    (first,) = wait_for(lambda: _runs(cp, ns, "nightly"), timeout=MINUTE, interval=0.2, what="the first run")
    op.kill()  # right after the run was created: the restarted operator must not create it again,
    # even when the status write that followed the creation was lost (the name alone says it exists).
    cp.kubectl(
        "patch",
        "phcj",
        "nightly",
        "-n",
        ns,
        "--subresource=status",
        "--type=merge",
        "-p",
        '{"status": {"lastScheduleTime": null, "active": null}}',
    )
    assert "lastScheduleTime" not in cp.get_json("phcj", "nightly", namespace=ns).get("status", {})
    op.start()
    wait_for(lambda: _healthy(op), timeout=60, what="the restarted operator")

    job = _runs(cp, ns, "nightly")[first]
    (owner,) = job["metadata"]["ownerReferences"]
    assert owner == {
        "apiVersion": "phashfleet.io/v1alpha1",
        "kind": "PhashCronJob",
        "name": "nightly",
        "uid": cronjob["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }
    assert job["metadata"]["labels"] == {"team": "archive", LABEL: "nightly"}
    assert job["spec"]["batchSize"] == 4 and job["spec"]["algorithm"] == "phash"
    scheduled = job["metadata"]["annotations"]["phashfleet.io/scheduled-time"]
    assert _minute(first) * 60 == int(dt.datetime.fromisoformat(scheduled).timestamp())

    status = wait_for(
        lambda: (s := job_status(cp, ns, first)).get("phase") in ("Succeeded", "Failed") and s,
        timeout=120,
        interval=0.5,
        what=f"{first} to end; operator log:\n{op.log_tail()}",
    )
    assert status["phase"] == "Succeeded" and status["succeeded"] == 6 and status["cached"] == 0, status
    records = [json.loads(line) for line in output.read_text().splitlines()]
    assert len(records) == 6 and not any(r.get("cached") for r in records), records
    hashes = {r["path"]: r["hash"] for r in records}

    second = f"nightly-{_minute(first) + 1}"
    wait_for(lambda: second in _runs(cp, ns, "nightly"), timeout=MINUTE, interval=0.5, what=f"{second} created")
    status = wait_for(
        lambda: (s := job_status(cp, ns, second)).get("phase") in ("Succeeded", "Failed") and s,
        timeout=120,
        interval=0.5,
        what=f"{second} to end",
    )
    assert status["phase"] == "Succeeded" and status["succeeded"] == 6 and status["cached"] == 6, status
    records = [json.loads(line) for line in output.read_text().splitlines()]
    assert len(records) == 6 and all(r.get("cached") is True for r in records), records  # nothing hashed again
    assert {r["path"]: r["hash"] for r in records} == hashes

    # successfulJobsHistoryLimit 1: the first run goes once the second has succeeded.
    wait_for(lambda: first not in _runs(cp, ns, "nightly"), timeout=30, what=f"{first} pruned")
    runs = _runs(cp, ns, "nightly")
    assert second in runs and all(_minute(r) > _minute(first) for r in runs), runs
    created = [e["message"].split()[2] for e in _events(cp, ns, "nightly") if e["reason"] == "SuccessfulCreate"]
    assert len(created) == len(set(created)), created  # never two creations of one run
    assert set(created) <= {f"nightly-{m}" for m in range(_minute(first), _minute(first) + 3)}, created
    status = wait_for(
        lambda: (s := cp.get_json("phcj", "nightly", namespace=ns).get("status", {})).get("lastSuccessfulTime") and s,
        timeout=30,
        what="lastSuccessfulTime",
    )
    assert status["lastScheduleTime"] >= scheduled and status["lastSuccessfulTime"] > scheduled
    assert all(a["name"] in runs for a in status.get("active", [])), status

    # failedJobsHistoryLimit 1: of the broken one's runs, one a minute and each Failed, only the newest stays.
    def one_failed_after_two() -> bool:
        made = {e["message"].split()[2] for e in _events(cp, ns, "broken") if e["reason"] == "SuccessfulCreate"}
        failed = [n for n, j in _runs(cp, ns, "broken").items() if (j.get("status") or {}).get("phase") == "Failed"]
        return len(made) >= 2 and len(failed) == 1 and _minute(failed[0]) > min(map(_minute, made))

    wait_for(one_failed_after_two, timeout=MINUTE, interval=0.5, what="the older failed run pruned")


def test_forbid_skips_while_a_run_is_active_and_replace_deletes_it(control_plane, fleet):
    """A suspended run never ends: Forbid creates no second run (Event JobAlreadyActive); switched to
    Replace, the due run replaces it: the earlier run is deleted and the new one created."""
    cp, ns, op = control_plane, fleet["namespace"], fleet["operator"]
    _photos(fleet["data"], 2)
    template = {"spec": {"source": {"uri": f"file://{fleet['data']}"}, "suspend": True}}
    cp.apply(_cronjob("held", template), namespace=ns)
    # Minute 61 passes the CRD's pattern; the operator refuses it with one Event and starts nothing.
    cp.apply(_cronjob("minute-61", template, schedule="61 * * * *"), namespace=ns)
    (invalid,) = wait_for(
        lambda: [e for e in _events(cp, ns, "minute-61") if e["reason"] == "InvalidSchedule"],
        timeout=30,
        what="an InvalidSchedule event",
    )
    assert invalid["type"] == "Warning" and "spec.schedule" in invalid["message"]

    (first,) = wait_for(lambda: _runs(cp, ns, "held"), timeout=MINUTE, interval=0.5, what="the first run")
    wait_for(lambda: job_status(cp, ns, first).get("phase") == "Suspended", timeout=60, what=f"{first} suspended")
    status = wait_for(
        lambda: (s := cp.get_json("phcj", "held", namespace=ns).get("status", {})).get("active") and s,
        timeout=30,
        what="status.active",
    )
    assert [a["name"] for a in status["active"]] == [first]
    assert status["active"][0]["uid"] == _runs(cp, ns, "held")[first]["metadata"]["uid"]

    skipped = wait_for(
        lambda: [e for e in _events(cp, ns, "held") if e["reason"] == "JobAlreadyActive"],
        timeout=MINUTE,
        interval=0.5,
        what=f"a JobAlreadyActive event; operator log:\n{op.log_tail()}",
    )
    assert first in skipped[0]["message"] and "Forbid" in skipped[0]["message"]
    assert set(_runs(cp, ns, "held")) == {first}  # the due run was not created
    printed = cp.kubectl("get", "phcj", "held", "-n", ns).stdout
    assert first in printed and "* * * * *" in printed

    cp.kubectl("patch", "phcj", "held", "-n", ns, "--type=merge", "-p", '{"spec": {"concurrencyPolicy": "Replace"}}')
    replaced = wait_for(
        lambda: (runs := _runs(cp, ns, "held")) and first not in runs and runs,
        timeout=MINUTE,
        interval=0.5,
        what=f"{first} replaced; operator log:\n{op.log_tail()}",
    )
    (new,) = replaced
    # The minute Forbid held back is still due (batch/v1 CronJob's rule) and within no deadline: it starts now.
    assert _minute(new) > _minute(first)
    reasons = [(e["reason"], e["message"]) for e in _events(cp, ns, "held")]
    assert any(r == "SuccessfulDelete" and first in m for r, m in reasons), reasons
    status = wait_for(
        lambda: (
            (s := cp.get_json("phcj", "held", namespace=ns).get("status", {})).get("active")
            and [a["name"] for a in s["active"]] == [new]
            and s
        ),
        timeout=30,
        what="status.active naming the new run",
    )
    assert status["lastScheduleTime"] == replaced[new]["metadata"]["annotations"]["phashfleet.io/scheduled-time"]
    assert _runs(cp, ns, "minute-61") == {}
    assert [e["reason"] for e in _events(cp, ns, "minute-61")] == ["InvalidSchedule"]  # said once, not every tick
