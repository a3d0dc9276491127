"""One contract for both job stores: RedisJobStore (on the harness's real Redis) and MemoryJobStore agree on
hand-out, leases, overdue batches, a batch counted once, counts, the failures cap, the collector's hold and report,
and the snapshot."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from phashfleet.results import make_record
from phashfleet.state.memory_store import MemoryJobStore
from phashfleet.state.redis_store import RedisJobStore
from phashfleet.state.store import BatchTally, JobSnapshot, JobStore
from phashfleet.worker.broker import redis_client

SETTINGS = {"algorithm": "phash", "hash_size": 8, "batch_size": 2}


@pytest.fixture(params=["redis", "memory"])
def store(request: pytest.FixtureRequest) -> JobStore:
    """Each test runs once against each store."""
    if request.param == "memory":
        return MemoryJobStore()
    env = request.getfixturevalue("redis_env")
    return RedisJobStore(redis_client(env["PHASHFLEET_REDIS_URL"], env["PHASHFLEET_REDIS_PASSWORD"]))


@pytest.fixture
def job(store: JobStore) -> Iterator[str]:
    """A fresh job id with state (total 10 files), deleted afterwards."""
    job_id = f"contract.{uuid.uuid4().hex[:12]}"
    assert store.create(job_id, SETTINGS, 10)
    yield job_id
    store.delete(job_id)


def _record(path: str, status: str = "ok", reason: str | None = None) -> dict[str, Any]:
    return make_record(path, algorithm="phash", hash_size=8, status=status, hash="0" * 16, reason=reason)


def test_create_is_once_and_the_snapshot_starts_empty(store: JobStore, job: str) -> None:
    assert not store.create(job, {"other": 1}, 99)
    snap = store.snapshot(job)
    assert len(snap.epoch) == 12 and snap.epoch != ""  # its parts' folder in the result store
    assert dataclasses.replace(snap, epoch="") == JobSnapshot(exists=True, total=10, settings=SETTINGS)
    assert store.snapshot(f"{job}.missing") == JobSnapshot(exists=False)


def test_hand_out_takes_the_next_batch_only_and_advances_the_cursor(store: JobStore, job: str) -> None:
    assert store.hand_out(job, 0, ["a", "b"], 100.0, False)
    assert not store.hand_out(job, 0, ["a", "b"], 100.0, False)  # a retried call
    assert not store.hand_out(job, 2, ["e", "f"], 100.0, False)  # not the next one
    assert store.hand_out(job, 1, ["c"], 100.0, True)
    snap = store.snapshot(job)
    assert (snap.next_batch, snap.listed, snap.inflight, snap.listing_done) == (2, 3, 2, True)
    assert not store.hand_out(f"{job}.missing", 0, ["x"], 100.0, False)


def test_mark_listing_done(store: JobStore, job: str) -> None:
    store.mark_listing_done(job)
    assert store.snapshot(job).listing_done and store.snapshot(job).finished


def test_start_batch_leases_a_batch_in_flight_and_refuses_done_or_unknown_ones(store: JobStore, job: str) -> None:
    store.hand_out(job, 0, ["a", "b"], 100.0, False)
    assert store.start_batch(job, 0, 200.0) == ["a", "b"]
    assert store.start_batch(job, 1, 200.0) is None
    assert store.start_batch(f"{job}.missing", 0, 200.0) is None
    store.finish_batch(job, 0, BatchTally())
    assert store.start_batch(job, 0, 200.0) is None


def test_an_unstarted_batch_is_overdue_once_queue_grace_has_passed(store: JobStore, job: str) -> None:
    store.hand_out(job, 0, ["a"], 100.0, False)
    assert store.overdue(job, 109.0, queue_grace=10.0) == []
    assert store.overdue(job, 110.0, queue_grace=10.0) == [0]  # waited exactly queue_grace: overdue
    store.rearm(job, 0, 110.0)  # sent again: its clock restarts
    assert store.overdue(job, 119.0, queue_grace=10.0) == []
    assert store.overdue(job, 120.0, queue_grace=10.0) == [0]


def test_a_leased_batch_is_overdue_when_its_lease_deadline_comes_not_by_queue_grace(store: JobStore, job: str) -> None:
    store.hand_out(job, 0, ["a"], 100.0, False)
    store.hand_out(job, 1, ["b"], 100.0, False)
    store.start_batch(job, 0, 150.0)
    assert store.overdue(job, 149.0, queue_grace=0.0) == [1]  # held: the queue clock does not apply
    assert store.overdue(job, 150.0, queue_grace=0.0) == [0, 1]  # the deadline itself: the lease ran out
    assert store.overdue(job, float("inf"), queue_grace=0.0) == [0, 1]  # drop_inflight: every batch out


def test_an_endless_lease_runs_out_at_the_end_of_time(store: JobStore, job: str) -> None:
    # `phashfleet run` leases until infinity; drop_inflight and resend_in_flight ask at now=inf for *every* batch.
    store.hand_out(job, 0, ["a"], 100.0, False)
    store.start_batch(job, 0, float("inf"))
    assert store.overdue(job, 1e12, queue_grace=0.0) == []
    assert store.overdue(job, float("inf"), queue_grace=0.0) == [0]


def test_rearm_drops_the_lease_and_a_renewed_lease_moves_the_deadline(store: JobStore, job: str) -> None:
    store.hand_out(job, 0, ["a", "b"], 100.0, False)
    store.start_batch(job, 0, 150.0)
    assert store.renew(job, 0, 180.0)  # renewed while it hashes
    assert store.overdue(job, 170.0, queue_grace=1000.0) == []
    assert store.overdue(job, 180.0, queue_grace=1000.0) == [0]
    store.rearm(job, 0, 180.0)  # no lease now: unstarted again, by the queue clock
    assert store.overdue(job, 200.0, queue_grace=1000.0) == []
    assert store.overdue(job, 200.0, queue_grace=20.0) == [0]


def _tally(*records: dict[str, Any]) -> BatchTally:
    return BatchTally.of(records)


def test_a_batch_counts_once_and_counts_are_exact(store: JobStore, job: str) -> None:
    store.hand_out(job, 0, ["a", "b", "c"], 100.0, False)
    store.hand_out(job, 1, ["d"], 100.0, True)
    tally = _tally(_record("a"), _record("b", "skipped"), _record("c", "failed", "x: no"))
    assert store.finish_batch(job, 0, tally) == 1
    assert store.finish_batch(job, 0, tally) == 0  # a redelivered batch changes nothing
    snap = store.snapshot(job)
    assert (snap.ok, snap.skipped, snap.failed, snap.done_files, snap.inflight) == (1, 1, 1, 3, 1)
    assert not snap.finished
    assert [f["path"] for f in store.failures(job)] == ["c"]
    assert store.finish_batch(job, 1, _tally(_record("d"))) == 1
    assert store.snapshot(job).finished and store.snapshot(job).ok == 2
    assert store.overdue(job, float("inf"), queue_grace=0.0) == []


def test_records_served_from_the_content_cache_are_counted_as_ok_and_cached(store: JobStore, job: str) -> None:
    store.hand_out(job, 0, ["a", "b", "c"], 100.0, True)
    cached = {**_record("a"), "cached": True}
    assert store.finish_batch(job, 0, _tally(cached, _record("b"), {**_record("c"), "cached": False})) == 1
    assert store.finish_batch(job, 0, _tally(cached)) == 0
    snap = store.snapshot(job)
    assert (snap.ok, snap.cached, snap.done_files) == (3, 1, 3)


def test_finishing_a_batch_of_a_job_with_no_state_says_so(store: JobStore) -> None:
    assert store.finish_batch(f"contract.{uuid.uuid4().hex}", 0, _tally(_record("a"))) == -1


def test_a_lease_is_renewed_only_while_the_batch_is_in_flight(store: JobStore, job: str) -> None:
    store.hand_out(job, 0, ["a", "b"], 100.0, False)
    assert store.renew(job, 0, 150.0)
    store.finish_batch(job, 0, _tally(_record("a"), _record("b")))
    assert not store.renew(job, 0, 500.0)  # late: the batch is closed, and gets no lease back
    assert store.overdue(job, float("inf"), queue_grace=0.0) == []
    assert store.snapshot(job).inflight == 0
    assert not store.renew(f"{job}.missing", 0, 500.0)


def test_the_collector_holds_a_job_until_it_reports_and_the_first_report_wins(store: JobStore, job: str) -> None:
    assert store.snapshot(job).collect_sent is None
    store.collect_sent(job, 300.0)
    assert store.start_collect(job, 360.0)
    snap = store.snapshot(job)
    assert (snap.collect_sent, snap.collect_lease, snap.collected) == (300.0, 360.0, None)
    store.collect_sent(job, 400.0)  # asked again (its hold ran out): the old hold goes
    assert store.snapshot(job).collect_lease is None
    assert store.collected(job, {"duplicateGroups": 2})
    assert store.collected(job, {"error": "late"})
    assert store.snapshot(job).collected == {"duplicateGroups": 2}
    assert not store.start_collect(job, 500.0)  # collected: a second collector does nothing
    assert not store.start_collect(f"{job}.missing", 500.0)
    assert not store.collected(f"{job}.missing", {})


def test_failures_keep_the_first_twenty_in_order(store: JobStore, job: str) -> None:
    store.hand_out(job, 0, [f"f{i:02d}" for i in range(25)], 100.0, True)
    store.finish_batch(job, 0, _tally(*(_record(f"f{i:02d}", "failed", f"x: {i}") for i in range(25))))
    assert [f["path"] for f in store.failures(job)] == [f"f{i:02d}" for i in range(20)]
    assert store.snapshot(job).failed == 25


def test_delete_forgets_everything(store: JobStore, job: str) -> None:
    store.hand_out(job, 0, ["a"], 100.0, True)
    store.renew(job, 0, 1.0)
    store.delete(job)
    assert store.snapshot(job) == JobSnapshot(exists=False)
    assert store.start_batch(job, 0, 200.0) is None
    assert store.finish_batch(job, 0, _tally(_record("a"))) == -1
    assert store.create(job, SETTINGS, 1)


def test_a_listing_counts_each_shard_once_and_knows_the_total_when_every_shard_is_in(store: JobStore, job: str) -> None:
    assert store.listing(job).due(0.0, queue_grace=10) == [0], "first, shard 0 (it decides the split)"
    store.listing_sent(job, 0, 100.0)
    assert store.listing(job).due(105.0, queue_grace=10) == [] and store.listing(job).due(111.0, queue_grace=10) == [0]
    assert store.start_listing(job, 0, 200.0, so_far=7)
    assert store.listing(job).due(150.0, queue_grace=10) == [], "held by a lister"
    assert store.listing(job).due(201.0, queue_grace=10) == [0], "its lister's hold ran out"
    assert store.finish_listing(job, 0, 7, "aaaa", shards=3) == 1
    assert store.finish_listing(job, 0, 9, "bbbb", shards=5) == 0, "a second lister of the same shard is not kept"
    assert not store.start_listing(job, 0, 300.0)
    state = store.listing(job)
    assert (state.shards, state.root, state.listed) == (3, "aaaa", {0: (7, "aaaa")})
    assert state.due(300.0, queue_grace=10) == [1, 2] and not state.complete
    assert not store.snapshot(job).source_listed
    store.finish_listing(job, 2, 5, "cccc")
    store.finish_listing(job, 1, 0, "dddd")
    snap, state = store.snapshot(job), store.listing(job)
    assert state.complete and state.files_so_far == 12 and snap.source_listed and snap.total == 12
    assert store.finish_listing(f"{job}.missing", 0, 1, "eeee") == -1


def test_a_listers_error_stops_the_shard_being_due_until_it_is_sent_again(store: JobStore, job: str) -> None:
    store.listing_sent(job, 0, 0.0)
    store.start_listing(job, 0, 60.0)
    store.listing_failed(job, 0, {"reason": "SourceUnreachable", "message": "m", "transient": True})
    state = store.listing(job)
    assert state.errors == {0: {"reason": "SourceUnreachable", "message": "m", "transient": True}}
    assert state.due(1e9, queue_grace=10) == [] and state.leases == {}
    store.listing_sent(job, 0, 5.0)
    assert store.listing(job).errors == {}
