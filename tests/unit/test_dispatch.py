"""Hand-out through a bounded window, resumable hand-out and overdue resends, on the in-memory store."""

from __future__ import annotations

from phashfleet.job.dispatch import (
    IN_FLIGHT_PER_WORKER,
    TAIL_MIN_FRACTION,
    dispatch_tick,
    job_window,
    tail_batch_size,
)
from phashfleet.job.lister import ListingMap, ListingReader, ListPlan, list_here
from phashfleet.job.spec import parse_spec
from phashfleet.results import make_record
from phashfleet.state.memory_store import MemoryJobStore
from phashfleet.state.result_store import ResultStore
from phashfleet.state.store import BatchTally

CHUNK = 5  # smaller than most batches here, so batches span chunks


def _job(tmp_path, files: int, batch: int):
    source = tmp_path / "src"
    source.mkdir()
    for i in range(files):
        (source / f"f{i:03d}.jpg").write_bytes(b"x")
    spec = parse_spec({"source": {"uri": str(source)}, "batchSize": batch})
    store = MemoryJobStore()
    store.create("j", spec.hash_settings(), 0)
    results = ResultStore(str(tmp_path / "results"))
    list_here(store, results, "j", ListPlan(dict(spec.source), CHUNK), allowed_roots=(str(source),))
    return spec, store, ListingMap.of(store.listing("j"), CHUNK), _files_of(store, results)


def _files_of(store, results):
    reader = ListingReader(results)
    return lambda batch_id: reader.files("j", store.snapshot("j").epoch, store.jobs["j"]["batches"][batch_id])


def _finish(store, files_of, batch_id):
    store.start_batch("j", batch_id, 1e18)
    records = [make_record(f, algorithm="phash", hash_size=8, status="ok", hash="00") for f in files_of(batch_id)]
    store.finish_batch("j", batch_id, BatchTally.of(records))


def test_window_bounds_batches_in_flight(tmp_path):
    spec, store, cursor, files_of = _job(tmp_path, files=25, batch=4)
    sent = []
    dispatch_tick(store, "j", spec, cursor, lambda j, b: sent.append(b), now=0, room=100, window=3)
    assert sent == [0, 1, 2] and store.snapshot("j").inflight == 3
    dispatch_tick(store, "j", spec, cursor, lambda j, b: sent.append(b), now=1, room=100, window=3)
    assert sent == [0, 1, 2], "a full window hands out nothing more"
    _finish(store, files_of, 0)
    dispatch_tick(store, "j", spec, cursor, lambda j, b: sent.append(b), now=2, room=100, window=3)
    assert sent == [0, 1, 2, 3]


def test_every_file_handed_out_once_and_listing_ends(tmp_path):
    spec, store, cursor, files_of = _job(tmp_path, files=10, batch=4)
    sent = []
    while not store.snapshot("j").finished:
        dispatch_tick(store, "j", spec, cursor, lambda j, b: sent.append(b), now=0, room=2, window=2)
        for batch_id in list(store.jobs["j"]["inflight"]):
            _finish(store, files_of, batch_id)
    snap = store.snapshot("j")
    assert sent == [0, 1, 2] and snap.ok == 10 and snap.listing_done


def test_a_new_listing_map_resumes_where_hand_out_stopped(tmp_path):
    spec, store, cursor, files_of = _job(tmp_path, files=12, batch=4)
    dispatch_tick(store, "j", spec, cursor, lambda j, b: None, now=0, room=1, window=5)
    fresh = ListingMap.of(store.listing("j"), CHUNK)  # as after an operator restart
    dispatch_tick(store, "j", spec, fresh, lambda j, b: None, now=0, room=1, window=5)
    assert [p.rsplit("/", 1)[1] for p in files_of(1)] == ["f004.jpg", "f005.jpg", "f006.jpg", "f007.jpg"]


def test_overdue_batches_are_sent_again(tmp_path):
    spec, store, cursor, files_of = _job(tmp_path, files=8, batch=4)
    sent = []
    dispatch_tick(store, "j", spec, cursor, lambda j, b: sent.append(b), now=0, room=2, window=2)
    store.start_batch("j", 0, lease_deadline=10)  # a worker took batch 0, then died
    result = dispatch_tick(
        store, "j", spec, cursor, lambda j, b: sent.append(b), now=11, room=2, window=2, queue_grace=100
    )
    assert result.resent == [0]
    result = dispatch_tick(
        store, "j", spec, cursor, lambda j, b: sent.append(b), now=200, room=2, window=2, queue_grace=100
    )
    assert sorted(result.resent) == [0, 1], "unstarted batches come back after the queue grace"


def test_a_batch_counts_once(tmp_path):
    spec, store, cursor, files_of = _job(tmp_path, files=4, batch=4)
    dispatch_tick(store, "j", spec, cursor, lambda j, b: None, now=0, room=1, window=1)
    store.start_batch("j", 0, 1e18)
    records = [make_record(f, algorithm="phash", hash_size=8, status="ok", hash="00") for f in files_of(0)]
    assert store.finish_batch("j", 0, BatchTally.of(records)) == 1
    assert store.finish_batch("j", 0, BatchTally.of(records)) == 0  # a second delivery
    assert store.snapshot("j").ok == 4


def test_a_jobs_window_grows_with_the_fleet_so_no_worker_waits_for_a_batch():
    # The configured window is a floor: a fleet larger than it still gets a batch in hand, one held next
    # and one queued per worker, instead of a fixed 16 in flight leaving the rest of the fleet idle.
    assert job_window(2, 16) == 16
    assert job_window(40, 16) == 40 * IN_FLIGHT_PER_WORKER
    assert job_window(0) == 1


def test_last_batches_shrink_so_the_fleet_finishes_together():
    # Plenty left: full batches. Near the end: the rest spread over every worker's in-flight slots,
    # never below batchSize / TAIL_MIN_FRACTION, never above batchSize.
    assert tail_batch_size(64, 100_000, workers=2) == 64
    assert tail_batch_size(64, 2 * IN_FLIGHT_PER_WORKER * 64, workers=2) == 64
    assert tail_batch_size(64, 240, workers=2) == 40
    assert tail_batch_size(64, 10, workers=2) == 64 // TAIL_MIN_FRACTION
    assert tail_batch_size(3, 1, workers=50) == 1


def test_given_the_fleet_a_tick_hands_out_every_file_once_in_shrinking_batches(tmp_path):
    spec, store, cursor, files_of = _job(tmp_path, files=100, batch=16)
    sent = []
    while not store.snapshot("j").listing_done:
        dispatch_tick(store, "j", spec, cursor, lambda j, b: sent.append(b), now=0, room=100, window=100, workers=2)
    sizes = [len(files_of(b)) for b in sent]
    assert sum(sizes) == 100 and len({f for b in sent for f in files_of(b)}) == 100
    assert sizes[0] == 16 and sizes == sorted(sizes, reverse=True)
    assert min(sizes[:-1]) == 16 // TAIL_MIN_FRACTION, "only the very last batch may hold fewer (what was left)"
