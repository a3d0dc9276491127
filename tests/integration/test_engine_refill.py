"""The operator's engine on real Redis refills the queue for what the fleet takes, not a fixed room per pod
once a second: top-ups between the full ticks, and a room that grows with the measured intake."""

from __future__ import annotations

import time

import pytest

from harness.listers import inline_lister, leased_files
from harness.wait import wait_for
from phashfleet.job.spec import parse_spec
from phashfleet.results import make_record
from phashfleet.state.redis_store import RedisJobStore
from phashfleet.state.store import BatchTally
from phashfleet.worker.broker import redis_client
from phashfleet_operator.cadence import TICK_SECONDS, TIMER_SECONDS
from phashfleet_operator.config import OperatorConfig
from phashfleet_operator.engine import JobEngine


@pytest.fixture
def store(redis_env) -> RedisJobStore:
    return RedisJobStore(redis_client(redis_env["PHASHFLEET_REDIS_URL"], redis_env["PHASHFLEET_REDIS_PASSWORD"]))


def _spec(data, **extra):
    return parse_spec({"source": {"uri": str(data)}, "batchSize": 2, **extra})


def _hash_all(store: RedisJobStore, job: str, batches: list[int]) -> None:
    """What a fleet faster than the refill does before the next tick: every batch sent is hashed."""
    for batch in batches:
        files = leased_files(store, job, batch)
        store.finish_batch(
            job,
            batch,
            BatchTally.of(make_record(f, algorithm="phash", hash_size=8, status="ok", hash="0" * 16) for f in files),
        )


def test_one_pod_that_empties_the_queue_at_once_gets_more_at_every_timer_call(store, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for i in range(600):
        (data / f"p{i:03d}.png").write_bytes(b"x")
    config = OperatorConfig(autoscaling="none", allowed_roots=(str(data),))
    sent: list[int] = []
    engine = JobEngine(
        store, lambda j, b: sent.append(b), config, lambda: 1, send_list=inline_lister(store, (str(data),))
    )
    spec = _spec(data)
    job, status, full, top_ups = "ns.refill.1", {"phase": "Pending"}, [], []
    calls_per_tick = round(TICK_SECONDS / TIMER_SECONDS)
    started = time.monotonic()
    for call in range(60):  # as the handler does: a full tick every fifth timer call, top-ups between
        before = len(sent)
        if call % calls_per_tick == 0:
            status = engine.tick(job, spec, status, lambda *event: None)
            full.append(len(sent) - before)
        else:
            top_ups.append(engine.top_up(job, spec))
            assert top_ups[-1] == len(sent) - before
        _hash_all(store, job, sent[before:])
        if status.get("phase") == "Succeeded":
            break
        # The intake is a rate: the next call comes a timer interval later, as kopf's timer makes it.
        time.sleep(max(0.0, started + (call + 1) * TIMER_SECONDS - time.monotonic()))
    assert status["phase"] == "Succeeded" and status["succeeded"] == 600, (status, full, top_ups)
    fixed_room = max(2, 1 * config.queue_per_worker)  # what one pod got per full tick before
    assert max(top_ups) > fixed_room  # the room grew with the measured intake
    # 300 batches at a fixed four a second take 75 s, four a timer call 15 s; measured, well under 10.
    assert call < 50, (full, top_ups)


def test_a_top_up_hands_out_nothing_for_a_suspended_or_unknown_job(store, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for i in range(40):
        (data / f"p{i:03d}.png").write_bytes(b"x")
    sent: list[int] = []
    engine = JobEngine(
        store,
        lambda j, b: sent.append(b),
        OperatorConfig(autoscaling="none", allowed_roots=(str(data),)),
        lambda: 1,
        send_list=inline_lister(store, (str(data),)),
    )
    spec = _spec(data)
    assert engine.top_up("ns.never.1", spec) == 0  # no full tick yet: nothing known to hand out
    status = {"phase": "Pending"}

    def listed() -> bool:  # the first ticks wait for the listing
        nonlocal status
        status = engine.tick("ns.pause.1", spec, status, lambda *event: None)
        return engine.jobs["ns.pause.1"].listing is not None

    wait_for(listed, timeout=30, interval=0.05, what="the job's listing")
    _hash_all(store, "ns.pause.1", list(sent))
    before = len(sent)
    assert engine.top_up("ns.pause.1", _spec(data, suspend=True)) == 0
    assert len(sent) == before
    assert engine.top_up("ns.pause.1", spec) > 0
