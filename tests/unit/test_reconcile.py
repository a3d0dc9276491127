"""Plain decisions of the operator: priority grants, replicas, backlog, job ids."""

from __future__ import annotations

from phashfleet.state.store import JobSnapshot
from phashfleet_operator.reconcile import backlog_batches, desired_replicas, grant, job_id


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


def test_replicas_follow_backlog_within_bounds():
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


def test_scale_to_zero_only_after_idle_cooldown():
    first = desired_replicas(0, current=3, per_worker=2, minimum=0, maximum=5, idle_since=None, now=100.0, cooldown=30)
    assert first.replicas == 3 and first.idle_since == 100.0
    later = desired_replicas(0, current=3, per_worker=2, minimum=0, maximum=5, idle_since=100.0, now=131.0, cooldown=30)
    assert later.replicas == 0
    busy_again = desired_replicas(
        2, current=0, per_worker=2, minimum=0, maximum=5, idle_since=100.0, now=140.0, cooldown=30
    )
    assert busy_again.replicas == 1 and busy_again.idle_since is None
