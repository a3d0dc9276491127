"""The operator's job engine on real Redis says what is true: an output it cannot write fails the job before
hashing, a worker misconfiguration ends it after the first batch, no workers and an unreachable source or
Redis are shown (and retried), not silent."""

from __future__ import annotations

import time

import pytest
import redis

from harness.listers import inline_lister, leased_files
from harness.outage import outage_server
from harness.ports import free_port
from harness.wait import wait_for
from phashfleet.job.collect import CollectPlan
from phashfleet.job.lister import ListPlan, chunk_size, list_shard
from phashfleet.job.spec import parse_spec
from phashfleet.results import make_record
from phashfleet.state import result_store
from phashfleet.state.redis_store import RedisJobStore
from phashfleet.state.store import BatchTally
from phashfleet.worker.broker import redis_client
from phashfleet_operator.config import OperatorConfig
from phashfleet_operator.engine import JobEngine, Unavailable


@pytest.fixture
def store(redis_env) -> RedisJobStore:
    return RedisJobStore(redis_client(redis_env["PHASHFLEET_REDIS_URL"], redis_env["PHASHFLEET_REDIS_PASSWORD"]))


class Events(list):
    """The engine's emit(): (type, reason, message) tuples."""

    def __call__(self, kind: str, reason: str, message: str) -> None:
        self.append((kind, reason, message))

    def reasons(self, kind: str | None = None) -> list[str]:
        return [r for k, r, _ in self if kind in (None, k)]


def _true(status: dict) -> dict:
    return next(c for c in status["conditions"] if c["status"] == "True")


def _folder(path, files: int):
    path.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        (path / f"p{i:03d}.jpg").write_bytes(b"x")
    return path


def test_an_output_it_cannot_write_fails_the_job_before_any_file_is_listed(store, tmp_path):
    data = _folder(tmp_path / "data", 5)
    sent = []
    engine = JobEngine(
        store,
        lambda j, b: sent.append(b),
        OperatorConfig(allowed_roots=(str(data),), output_roots=(str(tmp_path / "results"),)),
        lambda: 1,
        send_list=inline_lister(store, (str(data),)),
    )
    spec = parse_spec({"source": {"uri": str(data)}, "output": {"uri": str(tmp_path / "elsewhere" / "r.jsonl")}})
    events = Events()
    status = engine.tick("ns.leak.1", spec, {"phase": "Pending"}, events)
    assert status["phase"] == "Failed" and _true(status)["reason"] == "OutputFailed"
    assert _true(status)["message"].startswith("spec.output.uri:") and "elsewhere" in _true(status)["message"]
    assert sent == [] and not store.snapshot("ns.leak.1").exists  # nothing listed, nothing handed out
    assert events.reasons("Warning") == ["Failed"]


def test_a_first_batch_failing_outside_the_workers_roots_ends_the_job_and_drops_the_rest(store, tmp_path):
    data = _folder(tmp_path / "data", 100)
    out = tmp_path / "results" / "r.jsonl"
    sent: list[int] = []
    engine = JobEngine(
        store,
        lambda j, b: sent.append(b),
        OperatorConfig(allowed_roots=(str(data),), output_roots=(str(tmp_path / "results"),)),
        lambda: 2,
        send_list=inline_lister(store, (str(data),)),
    )
    spec = parse_spec({"source": {"uri": str(data)}, "batchSize": 10, "output": {"uri": str(out)}})
    job, events = "ns.outside.1", Events()
    status = engine.tick(job, spec, {"phase": "Pending"}, events)
    assert status["phase"] == "Running" and len(sent) > 1
    # The worker (started without the source among its roots) hashes the first batch: every file outside_roots.
    files = leased_files(store, job, sent[0])
    store.finish_batch(
        job,
        sent[0],
        BatchTally.of(
            make_record(
                f,
                algorithm="phash",
                hash_size=8,
                status="failed",
                reason=f"outside_roots: {f!r} is not under any allowed source root",
            )
            for f in files
        ),
    )
    status = engine.tick(job, spec, status, events)
    assert status["phase"] == "Failed", status
    condition = _true(status)
    assert condition["type"] == "Failed" and condition["reason"] == "WorkerConfiguration"
    assert "PHASHFLEET_ALLOWED_ROOTS" in condition["message"] and "source.allowedRoots" in condition["message"]
    assert (status["failed"], status["succeeded"]) == (10, 0) and status["completionTime"]
    # The batches still out are closed: a worker drops their messages instead of hashing 90 more failures.
    assert store.snapshot(job).inflight == 0 and store.start_batch(job, sent[1], 1e18) is None
    assert not out.exists()  # no partial output for a job that never really ran
    assert ("Warning", "Failed") in [(k, r) for k, r, _ in events]


def test_no_running_worker_is_shown_once_and_cleared_when_workers_come(store, tmp_path):
    data = _folder(tmp_path / "data", 20)
    ready = [0]
    engine = JobEngine(
        store,
        lambda j, b: None,
        OperatorConfig(allowed_roots=(str(data),), no_workers_seconds=0.5),
        lambda: 1,
        ready_workers=lambda: ready[0],
        send_list=inline_lister(store, (str(data),)),
    )
    spec = parse_spec({"source": {"uri": str(data)}, "batchSize": 5})
    job, events, status = "ns.starved.1", Events(), {"phase": "Pending"}

    def tick() -> dict:
        nonlocal status
        status = engine.tick(job, spec, status, events)
        return status

    assert _true(tick())["reason"] == "Hashing"  # not before no_workers_seconds
    wait_for(lambda: _true(tick())["reason"] == "NoWorkers", timeout=10, what="NoWorkers")
    condition = _true(status)
    assert condition["type"] == "Progressing" and status["phase"] == "Running"
    assert "no worker has been running" in condition["message"] and "phash-fleet-worker" in condition["message"]
    tick()
    tick()
    assert events.reasons("Warning") == ["NoWorkers"]  # one Event, not one per tick
    ready[0] = 1
    assert _true(tick())["reason"] == "Hashing"
    assert events.reasons("Normal")[-1] == "WorkersRunning"


def test_workers_elsewhere_that_make_progress_are_not_no_workers(store, tmp_path):
    """ready 0 (no Deployment) but files get done (workers outside the cluster): nothing to warn about."""
    data = _folder(tmp_path / "data", 40)
    sent: list[int] = []
    engine = JobEngine(
        store,
        lambda j, b: sent.append(b),
        OperatorConfig(allowed_roots=(str(data),), no_workers_seconds=0.5),
        lambda: 1,
        ready_workers=lambda: 0,
        send_list=inline_lister(store, (str(data),)),
    )
    spec = parse_spec({"source": {"uri": str(data)}, "batchSize": 1})
    job, events, status = "ns.remote.1", Events(), {"phase": "Pending"}
    started = time.monotonic()
    while time.monotonic() - started < 2.0:  # four times no_workers_seconds, a file done every 0.1 s
        status = engine.tick(job, spec, status, events)
        batch = sent.pop(0)
        files = leased_files(store, job, batch)
        store.finish_batch(
            job,
            batch,
            BatchTally.of(make_record(f, algorithm="phash", hash_size=8, status="ok", hash="00") for f in files),
        )
        time.sleep(0.1)  # the pace of the simulated remote worker, not a wait for a condition
    assert status["phase"] == "Running" and status["succeeded"] >= 10
    assert "NoWorkers" not in events.reasons()


def _finish_all(store, job: str, batches: list[int]) -> None:
    """Every batch sent comes back ok, as a worker would count it."""
    while batches:
        batch = batches.pop(0)
        files = leased_files(store, job, batch)
        store.finish_batch(
            job,
            batch,
            BatchTally.of(make_record(f, algorithm="phash", hash_size=8, status="ok", hash="00") for f in files),
        )


def test_a_finished_job_is_collecting_until_the_collector_reports_then_ends_with_its_report(store, tmp_path):
    data = _folder(tmp_path / "data", 6)
    sent: list[int] = []
    asked: list[tuple[str, CollectPlan]] = []
    engine = JobEngine(
        store,
        lambda j, b: sent.append(b),
        OperatorConfig(allowed_roots=(str(data),)),
        lambda: 1,
        send_collect=lambda j, plan: asked.append((j, plan)),
        send_list=inline_lister(store, (str(data),)),
    )
    out = tmp_path / "out" / "r.jsonl"
    spec = parse_spec(
        {"source": {"uri": str(data)}, "batchSize": 2, "duplicates": {"maxDistance": 4}, "output": {"uri": str(out)}}
    )
    job, events, status = "ns.collect.1", Events(), {"phase": "Pending"}
    status = engine.tick(job, spec, status, events)
    _finish_all(store, job, sent)
    status = engine.tick(job, spec, status, events)
    assert status["phase"] == "Running" and _true(status)["reason"] == "Collecting", status
    assert "grouping near-duplicates and writing the output" in _true(status)["message"]
    assert [(j, p.max_distance, p.output_uri) for j, p in asked] == [(job, 4, str(out))]
    status = engine.tick(job, spec, status, events)
    assert len(asked) == 1, "asked once while the collector may still be on its way"
    # The collector takes the job and its hold runs out (it died): the next tick asks again.
    assert store.start_collect(job, time.time() - 1)
    status = engine.tick(job, spec, status, events)
    assert len(asked) == 2 and status["phase"] == "Running"
    store.collected(job, {"duplicateGroups": 1, "duplicateFiles": 2, "outputUri": str(out)})
    status = engine.tick(job, spec, status, events)
    assert status["phase"] == "Succeeded", status
    assert (status["duplicateGroups"], status["duplicateFiles"], status["outputUri"]) == (1, 2, str(out))
    assert status["succeeded"] == 6 and "Completed" in events.reasons("Normal")


def test_an_output_the_collector_could_not_write_fails_the_job_naming_the_field(store, tmp_path):
    data = _folder(tmp_path / "data", 2)
    sent: list[int] = []
    engine = JobEngine(
        store,
        lambda j, b: sent.append(b),
        OperatorConfig(allowed_roots=(str(data),)),
        lambda: 1,
        send_collect=lambda j, p: None,
        send_list=inline_lister(store, (str(data),)),
    )
    spec = parse_spec({"source": {"uri": str(data)}, "output": {"uri": str(tmp_path / "r.jsonl")}})
    job, events = "ns.collectfail.1", Events()
    status = engine.tick(job, spec, {"phase": "Pending"}, events)
    _finish_all(store, job, sent)
    status = engine.tick(job, spec, status, events)
    store.collected(job, {"error": "spec.output.uri: disk full"})
    status = engine.tick(job, spec, status, events)
    assert status["phase"] == "Failed" and _true(status)["reason"] == "OutputFailed"
    assert _true(status)["message"] == "spec.output.uri: disk full"


@pytest.fixture
def flaky_site(tmp_path):
    """(server, URL of a folder) that answers 503 until the test sets `server.up_at = 0`."""
    root = _folder(tmp_path / "www" / "pics", 6).parent
    with outage_server(root) as (server, base):
        yield server, f"{base}/pics/"


def test_a_source_answering_503_is_retried_with_backoff_not_failed(store, flaky_site):
    pytest.importorskip("aiohttp")
    server, uri = flaky_site
    sent: list[int] = []
    engine = JobEngine(
        store, lambda j, b: sent.append(b), OperatorConfig(), lambda: 1, send_list=inline_lister(store, ())
    )
    spec = parse_spec({"source": {"uri": uri}, "batchSize": 2})
    job, events = "ns.flaky.1", Events()
    delays = []
    for retry in range(3):
        with pytest.raises(Unavailable) as info:
            engine.tick(job, spec, {"phase": "Pending"}, events, retry=retry)
        condition = _true(info.value.status)
        assert info.value.status["phase"] == "Pending" and condition["type"] == "Progressing"
        assert condition["reason"] == "SourceUnavailable" and "503" in condition["message"]
        delays.append(info.value.delay)
    assert delays == [1, 2, 4]
    assert events.reasons("Warning") == ["SourceUnavailable"]  # one Event for the whole outage
    server.up_at = 0
    status = engine.tick(job, spec, {"phase": "Pending"}, events)
    assert status["phase"] == "Running" and _true(status)["reason"] == "Hashing" and sent
    assert "Failed" not in events.reasons() and events.reasons("Normal") == ["Recovered"]


def test_redis_that_cannot_be_reached_is_retried_not_failed(tmp_path):
    data = _folder(tmp_path / "data", 2)
    client = redis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=1, socket_timeout=1)
    engine = JobEngine(RedisJobStore(client), lambda j, b: None, OperatorConfig(allowed_roots=(str(data),)), lambda: 1)
    events = Events()
    with pytest.raises(Unavailable) as info:
        engine.tick("ns.noredis.1", parse_spec({"source": {"uri": str(data)}}), {"phase": "Running"}, events)
    condition = _true(info.value.status)
    assert info.value.status["phase"] == "Running" and condition["reason"] == "RedisUnavailable"
    assert events.reasons("Warning") == ["RedisUnavailable"]


def test_the_workers_list_the_source_in_shards_and_a_dead_listers_shard_is_sent_again(store, tmp_path):
    data = tmp_path / "data"
    for folder in ("a", "b", "c"):
        _folder(data / folder, 4)
    _folder(data, 2)  # two files at the top
    asked: list[tuple[str, int]] = []
    sent: list[int] = []
    engine = JobEngine(
        store,
        lambda j, b: sent.append(b),
        OperatorConfig(allowed_roots=(str(data),)),
        lambda: 1,
        send_list=lambda j, shard, plan, delay: asked.append((j, shard)),
    )
    spec = parse_spec({"source": {"uri": str(data)}, "batchSize": 5})
    job, events = "ns.shards.1", Events()
    results = result_store.from_env()

    def list_it(shard: int) -> None:
        plan = ListPlan(dict(spec.source), chunk_size(5))
        list_shard(store, results, job, shard, plan, allowed_roots=(str(data),))

    status = engine.tick(job, spec, {"phase": "Pending"}, events)
    assert (status["phase"], _true(status)["reason"], asked, sent) == ("Running", "Listing", [(job, 0)], [])
    assert status["total"] == 0 and "files so far" in _true(status)["message"]
    list_it(0)  # the top folder: 2 files, and three more shards
    status = engine.tick(job, spec, status, events)
    assert asked[1:] == [(job, 1), (job, 2), (job, 3)] and sent == []
    assert "2 files so far (1 of 4 shards)" in _true(status)["message"]
    assert store.start_listing(job, 2, time.time() - 1)  # a lister took shard 2, then died
    list_it(1)
    list_it(3)
    status = engine.tick(job, spec, status, events)
    assert asked[4:] == [(job, 2)], "the dead lister's shard is sent again, and only it"
    list_it(2)
    status = engine.tick(job, spec, status, events)
    assert (status["phase"], _true(status)["reason"], status["total"]) == ("Running", "Hashing", 14)
    assert sent
    _finish_all(store, job, sent)
    while not store.snapshot(job).finished:
        status = engine.tick(job, spec, status, events)
        _finish_all(store, job, sent)
    assert store.snapshot(job).ok == 14


def test_a_source_the_listers_cannot_find_fails_the_job_naming_why(store, tmp_path):
    data = _folder(tmp_path / "data", 1)
    engine = JobEngine(
        store,
        lambda j, b: None,
        OperatorConfig(allowed_roots=(str(data),)),
        lambda: 1,
        send_collect=lambda j, plan: None,
        send_list=inline_lister(store, (str(data),)),
    )
    job, events = "ns.nosource.1", Events()
    status = engine.tick(job, parse_spec({"source": {"uri": str(data / "gone")}}), {"phase": "Pending"}, events)
    condition = _true(status)
    assert status["phase"] == "Failed" and condition["reason"] == "SourceNotFound" and "gone" in condition["message"]
    assert job not in store.job_ids(), "its state expires: it no longer counts as a job"
