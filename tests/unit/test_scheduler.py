"""scheduler.step against an in-memory API: a run made before a restart is never made twice."""

from __future__ import annotations

import datetime as dt

import pytest

from phashfleet_operator import cronjobs, kube, scheduler

NOW = dt.datetime(2026, 1, 1, 10, 1, 7, tzinfo=dt.UTC)
DUE = dt.datetime(2026, 1, 1, 10, 1, tzinfo=dt.UTC)


class FakeApi:
    """PhashJobs by name; `listed` False hides them from lists (a watch cache not caught up yet)."""

    def __init__(self) -> None:
        self.jobs: dict[str, dict] = {}
        self.listed = True
        self.creates = 0
        self.deletes: list[str] = []

    def list_objects(self, group, version, plural, namespace, selector):
        return list(self.jobs.values()) if self.listed else []

    def create_object(self, group, version, plural, body):
        self.creates += 1
        name = body["metadata"]["name"]
        if name in self.jobs:
            return self.jobs[name], False
        self.jobs[name] = {**body, "metadata": {**body["metadata"], "uid": f"uid-{name}", "creationTimestamp": "t"}}
        return self.jobs[name], True

    def delete_object(self, group, version, plural, namespace, name):
        self.deletes.append(name)
        self.jobs.pop(name, None)


@pytest.fixture
def api(monkeypatch) -> FakeApi:
    fake = FakeApi()
    for name in ("list_objects", "create_object", "delete_object"):
        monkeypatch.setattr(kube, name, getattr(fake, name))
    return fake


def _cronjob(status: dict | None = None, **spec) -> dict:
    return {
        "apiVersion": "phashfleet.io/v1alpha1",
        "kind": "PhashCronJob",
        "metadata": {"name": "n", "namespace": "ns", "uid": "cj", "creationTimestamp": "2026-01-01T10:00:30Z"},
        "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"source": {"uri": "file:///d"}}}, **spec},
        "status": status or {},
    }


def test_creates_the_due_run_and_reports_it(api):
    events: list[tuple[str, str, str]] = []
    status = scheduler.step(_cronjob(), NOW, lambda *e: events.append(e))
    name = cronjobs.run_name("n", DUE)
    assert set(api.jobs) == {name}
    assert status == {"active": [{"name": name, "uid": f"uid-{name}"}], "lastScheduleTime": "2026-01-01T10:01:00Z"}
    assert [e[1] for e in events] == ["SuccessfulCreate"]


def test_a_lost_status_write_never_makes_a_second_run(api):
    """The run exists but the status never said so, and the list does not show it yet: 409, same run."""
    scheduler.step(_cronjob(), NOW, lambda *e: None)
    api.listed = False
    events: list[tuple[str, str, str]] = []
    status = scheduler.step(_cronjob(), NOW + dt.timedelta(seconds=5), lambda *e: events.append(e))
    assert len(api.jobs) == 1 and events == []
    assert status["lastScheduleTime"] == "2026-01-01T10:01:00Z" and len(status["active"]) == 1


def test_a_listed_run_is_not_created_again(api):
    scheduler.step(_cronjob(), NOW, lambda *e: None)
    status = scheduler.step(_cronjob(), NOW + dt.timedelta(seconds=5), lambda *e: None)
    assert api.creates == 1 and status["lastScheduleTime"] == "2026-01-01T10:01:00Z"


def test_a_foreign_job_of_the_same_name_is_not_taken_for_a_run(api):
    name = cronjobs.run_name("n", DUE)
    api.jobs[name] = {"metadata": {"name": name, "uid": "x", "ownerReferences": []}}
    api.listed = False
    events: list[tuple[str, str, str]] = []
    status = scheduler.step(_cronjob(), NOW, lambda *e: events.append(e))
    assert [e[1] for e in events] == ["NameTaken"] and status["active"] == []


def test_replace_deletes_then_creates(api):
    scheduler.step(_cronjob(), NOW, lambda *e: None)
    status = scheduler.step(
        _cronjob({"lastScheduleTime": "2026-01-01T10:01:00Z"}, concurrencyPolicy="Replace"),
        NOW + dt.timedelta(minutes=1),
        lambda *e: None,
    )
    assert api.deletes == [cronjobs.run_name("n", DUE)]
    assert [a["name"] for a in status["active"]] == [cronjobs.run_name("n", DUE + dt.timedelta(minutes=1))]
