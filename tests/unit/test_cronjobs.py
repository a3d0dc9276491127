"""A PhashCronJob's decisions (phashfleet_operator.cronjobs): due times, names, concurrency, history."""

from __future__ import annotations

import datetime as dt

import pytest

from phashfleet_operator import cronjobs
from phashfleet_operator.cronjobs import Due, Run, ScheduleError

UTC = dt.UTC


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_due_is_the_latest_time_since_the_last_run():
    got = cronjobs.due(
        "* * * * *", UTC, last=at("2026-01-01 10:00:00"), now=at("2026-01-01 10:01:07"), deadline_seconds=None
    )
    assert got == Due(at("2026-01-01 10:01:00"), missed=0, next_time=at("2026-01-01 10:02:00"))


def test_nothing_due_until_the_next_time():
    got = cronjobs.due(
        "* * * * *", UTC, last=at("2026-01-01 10:01:00"), now=at("2026-01-01 10:01:59.9"), deadline_seconds=None
    )
    assert got.time is None and got.next_time == at("2026-01-01 10:02:00")


def test_a_time_exactly_now_is_due():
    got = cronjobs.due(
        "* * * * *", UTC, last=at("2026-01-01 10:00:00"), now=at("2026-01-01 10:01:00"), deadline_seconds=None
    )
    assert got.time == at("2026-01-01 10:01:00")


def test_first_run_counts_from_creation():
    """A PhashCronJob created at 10:00:30 runs first at 10:01, not at 10:00."""
    got = cronjobs.due(
        "* * * * *", UTC, last=at("2026-01-01 10:00:30"), now=at("2026-01-01 10:00:59"), deadline_seconds=None
    )
    assert got.time is None


def test_missed_runs_start_only_the_latest_and_are_counted():
    got = cronjobs.due(
        "* * * * *", UTC, last=at("2026-01-01 10:00:00"), now=at("2026-01-01 10:05:30"), deadline_seconds=None
    )
    assert got.time == at("2026-01-01 10:05:00") and got.missed == 4


def test_more_than_max_missed_stops_counting():
    got = cronjobs.due(
        "* * * * *", UTC, last=at("2026-01-01 00:00:00"), now=at("2026-01-02 00:00:30"), deadline_seconds=None
    )
    assert got.time == at("2026-01-02 00:00:00") and got.missed == cronjobs.MAX_MISSED


def test_starting_deadline_limits_the_window():
    """Down from 10:00 to 10:05:30: with a 120 s deadline only 10:04 and 10:05 are in the window."""
    got = cronjobs.due(
        "* * * * *", UTC, last=at("2026-01-01 10:00:00"), now=at("2026-01-01 10:05:30"), deadline_seconds=120
    )
    assert got.time == at("2026-01-01 10:05:00") and got.missed == 1


def test_a_run_past_its_deadline_is_missed():
    """An hourly run due at 10:00, looked at 10:03 with a 60 s deadline: too late, nothing starts."""
    got = cronjobs.due(
        "0 * * * *", UTC, last=at("2026-01-01 09:00:00"), now=at("2026-01-01 10:03:00"), deadline_seconds=60
    )
    assert got.time is None


def test_time_zone_reads_the_schedule_in_local_time():
    berlin = cronjobs.zone("Europe/Berlin")
    got = cronjobs.due(
        "0 2 * * *", berlin, last=at("2026-06-30 23:30:00"), now=at("2026-07-01 00:30:05"), deadline_seconds=None
    )
    assert got.time == at("2026-07-01 00:00:00")  # 02:00 CEST is 00:00 UTC


def test_bad_schedule_and_zone_name_the_field():
    with pytest.raises(ScheduleError, match=r"^spec\.schedule"):
        cronjobs.due(
            "61 * * * *", UTC, last=at("2026-01-01 00:00:00"), now=at("2026-01-01 01:00:00"), deadline_seconds=None
        )
    with pytest.raises(ScheduleError, match=r"^spec\.timeZone"):
        cronjobs.zone("Mars/Olympus")


def test_run_name_is_the_unix_minute():
    assert cronjobs.run_name("nightly", at("2026-01-01 00:00:00")) == f"nightly-{1767225600 // 60}"
    assert cronjobs.run_name("n", at("2026-01-01 00:00:00")) == cronjobs.run_name("n", at("2026-01-01 00:00:00"))


def _run(name: str, phase: str | None, created: str = "2026-01-01T00:00:00Z", **kw) -> Run:
    return Run(name=name, uid=f"uid-{name}", phase=phase, created=created, **kw)


DUE = Due(at("2026-01-01 10:01:00"))


def test_forbid_skips_while_a_run_is_active_and_says_so():
    plan = cronjobs.plan({"concurrencyPolicy": "Forbid"}, [_run("a", "Running")], DUE)
    assert plan.create is None and plan.delete == ()
    assert [(k, r) for k, r, _ in plan.events] == [("Normal", "JobAlreadyActive")]


def test_forbid_is_the_default_and_a_new_run_without_phase_is_active():
    assert cronjobs.plan({}, [_run("a", None)], DUE).create is None


def test_forbid_starts_once_the_earlier_run_ended():
    assert cronjobs.plan({}, [_run("a", "Succeeded")], DUE).create == DUE.time


def test_allow_starts_besides():
    plan = cronjobs.plan({"concurrencyPolicy": "Allow"}, [_run("a", "Running")], DUE)
    assert plan.create == DUE.time and plan.delete == ()


def test_replace_deletes_the_active_runs_first():
    runs = [_run("a", "Running"), _run("b", "Suspended"), _run("c", "Succeeded")]
    plan = cronjobs.plan({"concurrencyPolicy": "Replace"}, runs, DUE)
    assert plan.create == DUE.time and plan.delete == ("a", "b")
    assert ("Normal", "SuccessfulDelete") in [(k, r) for k, r, _ in plan.events]


def test_a_run_being_deleted_is_not_active():
    assert cronjobs.plan({}, [_run("a", "Running", deleting=True)], DUE).create == DUE.time


def test_suspend_starts_nothing_but_still_prunes():
    runs = [_run(f"s{i}", "Succeeded", f"2026-01-01T00:0{i}:00Z") for i in range(3)]
    plan = cronjobs.plan({"suspend": True, "successfulJobsHistoryLimit": 1}, runs, DUE)
    assert plan.create is None and plan.delete == ("s0", "s1")


def test_an_existing_due_run_is_not_started_again():
    plan = cronjobs.plan({"concurrencyPolicy": "Allow"}, [_run("x", "Running")], DUE, exists=True)
    assert plan.create is None and plan.events == ()


def test_missed_schedules_are_an_event():
    plan = cronjobs.plan({}, [], Due(DUE.time, missed=cronjobs.MAX_MISSED + 1))
    ((kind, reason, message),) = plan.events
    assert (kind, reason) == ("Warning", "MissedSchedules") and "more than 100" in message


def test_prune_keeps_the_newest_of_each_phase():
    runs = [
        _run("s1", "Succeeded", "2026-01-01T00:01:00Z"),
        _run("s3", "Succeeded", "2026-01-01T00:03:00Z"),
        _run("s2", "Succeeded", "2026-01-01T00:02:00Z"),
        _run("f1", "Failed", "2026-01-01T00:01:00Z"),
        _run("f2", "Failed", "2026-01-01T00:02:00Z"),
        _run("r", "Running", "2026-01-01T00:00:00Z"),
        _run("gone", "Succeeded", "2026-01-01T00:00:00Z", deleting=True),
    ]
    assert cronjobs.prune(runs, successful_limit=2, failed_limit=1) == ["s1", "f1"]
    assert cronjobs.prune(runs, successful_limit=0, failed_limit=0) == ["s1", "s2", "s3", "f1", "f2"]
    assert cronjobs.prune(runs, successful_limit=5, failed_limit=5) == []


def _cronjob() -> dict:
    return {
        "apiVersion": "phashfleet.io/v1alpha1",
        "kind": "PhashCronJob",
        "metadata": {"name": "nightly", "namespace": "ns", "uid": "cj-uid"},
        "spec": {
            "schedule": "* * * * *",
            "jobTemplate": {"metadata": {"labels": {"team": "a"}}, "spec": {"source": {"uri": "file:///d"}}},
        },
    }


def test_job_manifest_is_owned_labelled_and_named():
    job = cronjobs.job_manifest(_cronjob(), at("2026-01-01 00:00:00"))
    meta = job["metadata"]
    assert meta["name"] == cronjobs.run_name("nightly", at("2026-01-01 00:00:00")) and meta["namespace"] == "ns"
    assert meta["labels"] == {"team": "a", cronjobs.CRONJOB_LABEL: "nightly"}
    assert meta["annotations"] == {cronjobs.SCHEDULED_ANNOTATION: "2026-01-01T00:00:00Z"}
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "phashfleet.io/v1alpha1",
            "kind": "PhashCronJob",
            "name": "nightly",
            "uid": "cj-uid",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert job["spec"] == {"source": {"uri": "file:///d"}} and job["kind"] == "PhashJob"
    assert cronjobs.owned([job], "cj-uid")[0].name == meta["name"]
    assert cronjobs.owned([job], "other") == []


def test_status_lists_active_runs_and_keeps_the_latest_success():
    runs = [
        _run("b", "Running"),
        _run("a", None),
        _run("s", "Succeeded", completed="2026-01-01T00:05:00Z"),
    ]
    status = cronjobs.cron_status(runs, at("2026-01-01 00:06:00"), {"lastSuccessfulTime": "2026-01-01T00:01:00Z"})
    assert status == {
        "active": [{"name": "a", "uid": "uid-a"}, {"name": "b", "uid": "uid-b"}],
        "lastScheduleTime": "2026-01-01T00:06:00Z",
        "lastSuccessfulTime": "2026-01-01T00:05:00Z",
    }
    assert cronjobs.cron_status([], None, {"lastSuccessfulTime": "2026-01-01T00:01:00Z"})["lastSuccessfulTime"] == (
        "2026-01-01T00:01:00Z"
    )
