"""Plain decisions of the operator: priority grants, replicas, backlog, job ids."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import yaml

from phashfleet.state.store import JobSnapshot
from phashfleet_operator.autoscaler import leads
from phashfleet_operator.config import OperatorConfig
from phashfleet_operator.reconcile import backlog_batches, desired_replicas, grant, job_id

CHART = Path(__file__).resolve().parents[2] / "charts" / "phash-fleet"


def test_job_id_is_readable_and_changes_with_uid():
    assert job_id("media", "photos", "0123456789abcdef") == "media.photos.01234567"
    assert job_id("media", "photos", "fedcba9876543210") != job_id("media", "photos", "0123456789abcdef")


def test_grant_gives_room_up_to_capacity():
    assert grant(1, [], queued=1, capacity=4) == 3
    assert grant(1, [], queued=6, capacity=4) == 0


def test_lower_priority_waits_while_a_higher_one_wants_room():
    assert grant(0, [2], queued=0, capacity=4) == 0
    assert grant(2, [0, 1], queued=0, capacity=4) == 4
    assert grant(1, [1], queued=0, capacity=4) == 4  # equal priority shares


def test_backlog_counts_inflight_and_unlisted_batches():
    snap = JobSnapshot(exists=True, total=100, listed=40, inflight=3)
    assert backlog_batches(snap, batch_size=10) == 3 + 6
    done = JobSnapshot(exists=True, total=100, listed=100, listing_done=True, inflight=0)
    assert backlog_batches(done, batch_size=10) == 0
    assert backlog_batches(JobSnapshot(exists=False), 10) == 0


def test_replicas_follow_the_queued_messages_within_bounds():
    common = {
        "current": 0,
        "per_worker": 2,
        "minimum": 0,
        "maximum": 5,
        "idle_since": None,
        "now": 100.0,
        "cooldown": 30,
    }
    assert desired_replicas(1, **common).replicas == 1  # never zero while work remains
    assert desired_replicas(7, **common).replicas == 4
    assert desired_replicas(100, **common).replicas == 5


def test_batches_still_out_with_an_empty_queue_keep_the_fleet_and_the_idle_clock_stopped():
    held = desired_replicas(
        0, working=True, current=3, per_worker=2, minimum=0, maximum=5, idle_since=100.0, now=200.0, cooldown=30
    )
    assert held.replicas == 3 and held.idle_since is None
    lost = desired_replicas(
        0, working=True, current=0, per_worker=2, minimum=0, maximum=5, idle_since=None, now=200.0, cooldown=30
    )
    assert lost.replicas == 1  # never zero while a batch is out


def test_batches_per_worker_has_one_default_the_charts():
    values = yaml.safe_load((CHART / "values.yaml").read_text())["autoscaling"]["batchesPerWorker"]
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert OperatorConfig().batches_per_worker == values
    assert schema["properties"]["autoscaling"]["properties"]["batchesPerWorker"]["default"] == values


def test_scale_to_zero_only_after_idle_cooldown():
    first = desired_replicas(0, current=3, per_worker=2, minimum=0, maximum=5, idle_since=None, now=100.0, cooldown=30)
    assert first.replicas == 3 and first.idle_since == 100.0
    later = desired_replicas(0, current=3, per_worker=2, minimum=0, maximum=5, idle_since=100.0, now=131.0, cooldown=30)
    assert later.replicas == 0
    busy_again = desired_replicas(
        2, current=0, per_worker=2, minimum=0, maximum=5, idle_since=100.0, now=140.0, cooldown=30
    )
    assert busy_again.replicas == 1 and busy_again.idle_since is None


def test_only_the_peer_kopf_lets_act_leads():
    now = dt.datetime(2026, 12, 3, 12, 0, tzinfo=dt.UTC)
    seen = (now - dt.timedelta(seconds=5)).isoformat()
    gone = (now - dt.timedelta(seconds=120)).isoformat()
    peers = {"me": {"priority": 50, "lifetime": 60, "lastseen": seen}}
    assert leads(peers, "me", 50, now)
    assert leads({}, "me", 50, now)  # the first look, before kopf's first keepalive
    assert not leads({**peers, "boss": {"priority": 100, "lifetime": 60, "lastseen": seen}}, "me", 50, now)
    assert not leads(
        {**peers, "twin": {"priority": 50, "lifetime": 60, "lastseen": seen}}, "me", 50, now
    )  # kopf pauses both
    assert leads({**peers, "dead": {"priority": 100, "lifetime": 60, "lastseen": gone}}, "me", 50, now)
    assert leads({**peers, "junior": {"priority": 10, "lifetime": 60, "lastseen": seen}}, "me", 50, now)


def test_a_draining_queue_never_shrinks_the_fleet_while_work_remains():
    # Two workers took most of the queue: 3 left at 4 a worker would ask for 1, stopping a worker mid-job.
    common = {"per_worker": 4, "minimum": 0, "maximum": 5, "idle_since": None, "now": 100.0, "cooldown": 30}
    assert desired_replicas(3, current=2, **common).replicas == 2
    assert desired_replicas(30, current=2, **common).replicas == 5  # it still grows
    assert desired_replicas(3, current=9, **common).replicas == 5  # and keeps within the maximum
