"""Transient errors are retried with backoff (kopf.TemporaryError), never mistaken for the end of a listing."""

from __future__ import annotations

from types import SimpleNamespace
from typing import cast

import kopf
import pytest
from kubernetes.client.rest import ApiException

from phashfleet.files.listing import SourceNetworkError, SourceSplit
from phashfleet.job import lister
from phashfleet.state.memory_store import MemoryJobStore
from phashfleet.state.result_store import ResultStore
from phashfleet_operator import handlers
from phashfleet_operator.engine import Unavailable
from phashfleet_operator.reconcile import no_workers_since, retry_delay
from phashfleet_operator.runtime import Runtime


def test_retry_delay_doubles_up_to_thirty_seconds():
    assert [retry_delay(n) for n in range(7)] == [1, 2, 4, 8, 16, 30, 30]
    assert retry_delay(10_000) == 30


def test_no_workers_since_starts_on_the_first_idle_look_and_clears_on_workers_or_progress():
    assert no_workers_since(None, ready=0, progressed=False, now=5.0) == 5.0
    assert no_workers_since(5.0, ready=0, progressed=False, now=9.0) == 5.0
    assert no_workers_since(5.0, ready=1, progressed=False, now=9.0) is None
    assert no_workers_since(5.0, ready=0, progressed=True, now=9.0) is None
    assert no_workers_since(5.0, ready=None, progressed=False, now=9.0) == 5.0  # unknown: as it was
    assert no_workers_since(None, ready=None, progressed=False, now=9.0) is None


def test_a_listing_that_broke_mid_way_is_listed_again_whole_not_taken_as_ended(tmp_path, monkeypatch):
    calls = []

    def flaky(source, roots, *, max_shards, storage_options=None):
        calls.append(1)

        def refs():
            for i in range(10):
                if i == 3 and len(calls) == 1:
                    raise SourceNetworkError("http://x/", "503 Service Unavailable")
                yield f"http://x/{i}.jpg"

        return refs(), SourceSplit(())

    monkeypatch.setattr(lister, "split_source", flaky)
    store, results = MemoryJobStore(), ResultStore(str(tmp_path))
    store.create("ns.j.1", {}, 0)
    plan = lister.ListPlan({"uri": "http://x/"}, 2)
    with pytest.raises(SourceNetworkError):
        lister.list_shard(store, results, "ns.j.1", 0, plan, allowed_roots=())
    assert not store.snapshot("ns.j.1").source_listed, "the chunks written before the error count for nothing"
    store.listing_sent("ns.j.1", 0, 1.0)  # the operator sends it again after its retry delay
    lister.list_shard(store, results, "ns.j.1", 0, plan, allowed_roots=())
    snap = store.snapshot("ns.j.1")
    assert snap.source_listed and snap.total == 10
    mapping = lister.ListingMap.of(store.listing("ns.j.1"), 2)
    assert list(lister.iter_listing(results, "ns.j.1", snap.epoch, mapping)) == [f"http://x/{i}.jpg" for i in range(10)]


class _Engine:
    def __init__(self, error=None, status=None):
        self.error, self.status, self.retries = error, status or {"phase": "Running"}, []

    def tick(self, jid, job, status, emit, *, retry=0):
        self.retries.append(retry)
        if self.error:
            raise self.error
        return dict(self.status)


def _tick(engine: _Engine, retry: int = 0):
    handlers.tick(
        memo=cast(Runtime, SimpleNamespace(engine=engine, cadence=None)),
        spec={"source": {"uri": "/d"}},
        status={"phase": "Running"},
        namespace="ns",
        name="job",
        uid="0123456789",
        body={},
        meta={"generation": 1},
        retry=retry,
    )


def test_tick_turns_an_unavailable_source_into_a_temporary_error_and_writes_why(monkeypatch):
    written = []
    monkeypatch.setattr(handlers, "patch_status", lambda *args: written.append(args[-1]) or True)
    reason = {
        "phase": "Running",
        "conditions": [{"type": "Progressing", "status": "True", "reason": "SourceUnavailable", "message": "503"}],
    }
    engine = _Engine(Unavailable("the source cannot be listed", reason, 4.0))
    with pytest.raises(kopf.TemporaryError) as info:
        _tick(engine, retry=2)
    assert info.value.delay == 4.0 and engine.retries == [2]
    assert written and written[0]["conditions"][0]["reason"] == "SourceUnavailable"


@pytest.mark.parametrize("error", [ApiException(status=503, reason="Service Unavailable"), ConnectionResetError()])
def test_an_apiserver_that_cannot_take_the_status_now_is_retried_with_backoff(monkeypatch, error):
    def refuse(*args):
        raise error

    monkeypatch.setattr(handlers, "patch_status", refuse)
    with pytest.raises(kopf.TemporaryError) as info:
        _tick(_Engine(status={"phase": "Running", "total": 3}), retry=3)
    assert info.value.delay == 8


def test_a_permanent_apiserver_refusal_is_not_dressed_up_as_temporary(monkeypatch):
    def refuse(*args):
        raise ApiException(status=422, reason="Invalid")

    monkeypatch.setattr(handlers, "patch_status", refuse)
    with pytest.raises(ApiException):
        _tick(_Engine(status={"phase": "Running", "total": 3}))
