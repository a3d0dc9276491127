"""Fair sharing between namespaces: the queue's share per namespace, and a namespace's limit on running jobs."""

from __future__ import annotations

from collections import Counter, deque

import pytest

from phashfleet.job.status import CONDITION_TYPES, queued_status
from phashfleet_operator.config import OperatorConfig
from phashfleet_operator.limits import ANNOTATION, NamespaceLimits, parse_limit
from phashfleet_operator.reconcile import Contender, NamespaceJob, fair_grant, namespace_hold


def _job(jid: str, ns: str, inflight: int = 0, rank: int = 1) -> Contender:
    return Contender(jid, ns, rank, inflight)


def test_a_job_alone_gets_the_free_room():
    assert fair_grant(_job("a1", "a"), [], queued=2, capacity=8) == 6


def test_a_namespace_over_its_part_waits_while_another_catches_up():
    a, b = _job("a1", "a", inflight=8), _job("b1", "b", inflight=0)
    # The pool is 2 free + 8 in flight: 5 each; a is over, b may take all the free room.
    assert fair_grant(a, [b], queued=6, capacity=8) == 0
    assert fair_grant(b, [a], queued=6, capacity=8) == 2


def test_a_namespace_with_more_jobs_gets_no_more_than_one_with_fewer():
    a1, a2, b = _job("a1", "a", 3), _job("a2", "a", 3), _job("b1", "b", 3)
    # Pool 3 free + 9 in flight = 12: 6 per namespace; a's two jobs 3 each (full), b 6 (3 more).
    assert fair_grant(a1, [a2, b], queued=5, capacity=8) == 0
    assert fair_grant(a2, [a1, b], queued=5, capacity=8) == 0
    assert fair_grant(b, [a1, a2], queued=5, capacity=8) == 3


def test_priority_still_wins_within_and_across_namespaces():
    low, high_other_ns, high_same_ns = _job("a1", "a", rank=0), _job("b1", "b", rank=2), _job("a2", "a", rank=2)
    assert fair_grant(low, [high_other_ns], queued=0, capacity=8) == 0
    assert fair_grant(low, [high_same_ns], queued=0, capacity=8) == 0
    # A lower job waiting does not share in the higher one's pool.
    assert fair_grant(high_other_ns, [low], queued=0, capacity=8) == 8


def _simulate(jobs: list[Contender], *, grant_fn, steps: int = 400, workers: int = 2, capacity: int = 8) -> Counter:
    """Batches done per namespace when jobs tick in a fixed order (a's first: its worst case for b) and
    workers take batches from one FIFO queue, one batch per worker per step."""
    queue: deque[str] = deque()
    inflight: Counter = Counter()
    done: Counter = Counter()
    by_id = {j.job_id: j for j in jobs}
    for _ in range(steps):
        for j in jobs:
            me = Contender(j.job_id, j.namespace, j.rank, inflight[j.job_id])
            others = [Contender(o.job_id, o.namespace, o.rank, inflight[o.job_id]) for o in jobs if o is not j]
            for _ in range(grant_fn(me, others, len(queue), capacity)):
                queue.append(j.job_id)
                inflight[j.job_id] += 1
        for _ in range(min(workers, len(queue))):
            jid = queue.popleft()
            inflight[jid] -= 1
            done[by_id[jid].namespace] += 1
    return done


def _per_job_grant(job: Contender, others: list[Contender], queued: int, capacity: int) -> int:
    """The grant before fair sharing: any job takes all the free room."""
    return max(0, capacity - queued)


@pytest.mark.parametrize("a_jobs", [1, 3])
def test_one_fifo_queue_hashes_equal_shares_per_namespace(a_jobs):
    jobs = [_job(f"a{i}", "a") for i in range(a_jobs)] + [_job("b0", "b")]
    done = _simulate(jobs, grant_fn=fair_grant)
    share = done["a"] / (done["a"] + done["b"])
    assert 0.45 <= share <= 0.55, done
    # The test's own check: the old grant (whoever ticks first fills the queue) starves b.
    unfair = _simulate(jobs, grant_fn=_per_job_grant)
    assert unfair["a"] / (unfair["a"] + unfair["b"]) > 0.6, unfair


def _ns(name: str, created: str, phase: str | None) -> NamespaceJob:
    return NamespaceJob(name, created, phase)


def test_no_limit_holds_nothing():
    jobs = [_ns("x", "T1", "Running"), _ns("y", "T2", "Pending")]
    assert namespace_hold("y", jobs, 0) is None


def test_jobs_beyond_the_limit_wait_in_creation_order():
    jobs = [_ns("c", "T3", "Pending"), _ns("a", "T1", "Running"), _ns("b", "T2", "Pending"), _ns("d", "T2", None)]
    assert namespace_hold("a", jobs, 1) is None  # running keeps running
    held_b = namespace_hold("b", jobs, 1)
    assert held_b is not None and held_b.running == ("a",) and held_b.place == 1
    held_d = namespace_hold("d", jobs, 1)  # same second as b: by name
    assert held_d is not None and held_d.place == 2
    assert namespace_hold("b", jobs, 2) is None  # the first waiting one takes the free place
    assert namespace_hold("d", jobs, 2) is not None


def test_ended_jobs_free_their_places_and_suspended_ones_keep_them():
    jobs = [_ns("a", "T1", "Succeeded"), _ns("b", "T2", "Suspended"), _ns("c", "T3", "Pending")]
    held = namespace_hold("c", jobs, 1)
    assert held is not None and held.running == ("b",)
    assert namespace_hold("c", [_ns("a", "T1", "Failed"), _ns("c", "T3", "Pending")], 1) is None


def test_a_job_not_listed_yet_comes_last():
    held = namespace_hold("new", [_ns("a", "T1", "Pending")], 1)
    assert held is not None and held.running == () and held.place == 1


def test_the_annotation_value_is_a_whole_number_or_the_default():
    assert parse_limit(None, 3) == 3
    assert parse_limit(" 2 ", 3) == 2
    assert parse_limit("0", 3) == 0
    assert parse_limit("-1", 3) == 3
    assert parse_limit("two", 3) == 3


def test_the_namespace_annotation_overrides_the_default_and_is_cached():
    reads: list[str] = []
    annotations = {"capped": {ANNOTATION: "1"}, "free": {}}

    def read(ns: str) -> dict[str, str] | None:
        reads.append(ns)
        return annotations.get(ns)

    limits = NamespaceLimits(4, read=read, ttl=60)
    assert limits.limit("capped") == 1 and limits.limit("free") == 4 and limits.limit("unreadable") == 4
    assert limits.limit("capped") == 1 and reads == ["capped", "free", "unreadable"]


def test_a_held_job_is_pending_with_a_queued_condition_naming_the_running_jobs():
    limits = NamespaceLimits(0, read=lambda ns: {ANNOTATION: "1"})
    jobs = [_ns("first", "T1", "Running"), _ns("second", "T2", "Pending")]
    status = limits.held("media", "second", jobs, {"phase": "Pending"})
    assert status is not None and status["phase"] == "Pending"
    (true,) = [c for c in status["conditions"] if c["status"] == "True"]
    assert true["type"] == "Queued" and true["reason"] == "NamespaceLimit"
    assert "first" in true["message"] and ANNOTATION in true["message"] and "number 1 in line" in true["message"]
    assert limits.held("media", "first", jobs, {"phase": "Running"}) is None


def test_queued_status_sets_only_queued_true():
    status = queued_status("NamespaceLimit", "m", {})
    assert {c["type"] for c in status["conditions"]} == set(CONDITION_TYPES)
    assert [c["type"] for c in status["conditions"] if c["status"] == "True"] == ["Queued"]


def test_the_default_limit_comes_from_the_environment(monkeypatch):
    assert OperatorConfig.from_env().max_running_jobs_per_namespace == 0
    monkeypatch.setenv("PHASHFLEET_MAX_RUNNING_JOBS_PER_NAMESPACE", "2")
    assert OperatorConfig.from_env().max_running_jobs_per_namespace == 2
