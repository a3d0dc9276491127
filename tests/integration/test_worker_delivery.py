"""Real worker processes on real Redis: double delivery counts once, SIGTERM drains, SIGKILL recovers."""

from __future__ import annotations

import io
import os
import signal
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from harness.listers import hand_out_files
from harness.outage import serving
from harness.results import records_of
from harness.synthetic import photo_like
from harness.wait import wait_for
from phashfleet.job.dispatch import dispatch_tick
from phashfleet.job.lister import list_job_here
from phashfleet.job.spec import parse_spec
from phashfleet.state import result_store
from phashfleet.state.keys import queue
from phashfleet.state.redis_store import RedisJobStore
from phashfleet.worker.actor import send_batch
from phashfleet.worker.broker import make_broker, redis_client


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """60 photo-like JPEGs big enough that a batch takes a noticeable moment to hash."""
    folder = tmp_path_factory.mktemp("photos")
    for i in range(60):
        photo_like(1200, 900, seed=i).save(folder / f"p{i:02d}.jpg", quality=85)
    return folder


@pytest.fixture
def workers(start_worker, photos):
    """Factory for `phashfleet worker` processes that may read `photos`; all are stopped at the end."""

    def start(name: str = "w", **extra_env: str):
        return start_worker(str(photos), name=name, PHASHFLEET_SHUTDOWN_TIMEOUT="30", **extra_env)

    return start


class Driver:
    """Plays the operator's part for one job: hands out batches and resends overdue ones."""

    def __init__(
        self,
        redis_env,
        photos: Path,
        *,
        batch_size: int = 10,
        timeout: int = 60,
        name: str = "job",
        exact: bool = False,
    ) -> None:
        client = redis_client(redis_env["PHASHFLEET_REDIS_URL"], redis_env["PHASHFLEET_REDIS_PASSWORD"])
        self.broker = make_broker(client)
        self.store = RedisJobStore(client)
        self.spec = parse_spec(
            {"source": {"uri": str(photos)}, "batchSize": batch_size, "timeoutSeconds": timeout, "exact": exact}
        )
        self.roots = (str(photos),)
        self.job_id = f"test.{name}.{os.getpid()}"
        self.store.create(self.job_id, self.spec.hash_settings(), 0)
        self.listing = list_job_here(self.store, result_store.from_env(), self.job_id, self.spec, self.roots)
        self.resent: list[int] = []

    def send(self, job_id: str, batch_id: int) -> None:
        send_batch(self.broker, job_id, batch_id)

    def tick(self, room: int = 2, window: int = 3):
        result = dispatch_tick(
            self.store, self.job_id, self.spec, self.listing, self.send, now=time.time(), room=room, window=window
        )
        self.resent += result.resent
        return self.store.snapshot(self.job_id)

    def run_until_finished(self, timeout: float = 180, **kw):
        return wait_for(
            lambda: (s := self.tick(**kw)).finished and s, timeout=timeout, interval=0.2, what="job finished"
        )


def test_the_same_message_delivered_twice_counts_once(redis_env, photos, workers):
    driver = Driver(redis_env, photos, batch_size=60)
    snap = driver.tick(room=1, window=1)
    assert snap.inflight == 1
    driver.send(driver.job_id, 0)  # a duplicate delivery of batch 0
    workers()
    snap = wait_for(lambda: (s := driver.store.snapshot(driver.job_id)).finished and s, timeout=120, what="batch done")
    assert snap.ok == 60 and snap.done_files == 60
    records = records_of(driver.store, driver.job_id)
    assert len(records) == 60 and len({r["path"] for r in records}) == 60  # one part, published once
    assert result_store.from_env().part_ids(driver.job_id, snap.epoch) == [0]
    # The duplicate was taken off the queue and dropped, not hashed into the counts again.
    wait_for(lambda: driver.store.queue_length() == 0, timeout=30, what="queue drained")
    assert driver.store.snapshot(driver.job_id).ok == 60


def test_sigterm_drains_the_in_flight_batch(redis_env, slow_site, workers):
    store, job_id = slow_job(redis_env, slow_site, "sigterm", batches=1, files=16)  # 4 s of hashing
    SlowImages.served = 0
    worker = workers()
    wait_for(
        lambda: 0 < SlowImages.served < 16 and store.client.zcard(f"phashfleet:job:{job_id}:leases") == 1,
        timeout=60,
        interval=0.02,
        what="the worker part-way through the batch",
    )
    worker.signal(signal.SIGTERM)
    assert worker.proc.wait(timeout=60) == 0
    snap = store.snapshot(job_id)
    assert snap.inflight == 0 and snap.ok == 16, "the batch in flight at SIGTERM was finished before exiting"


def test_sigkilled_worker_batches_come_back_and_count_once(redis_env, photos, workers):
    driver = Driver(redis_env, photos, batch_size=20, timeout=5, exact=True)  # exact: slow enough to catch
    victim = workers("victim")
    driver.tick()
    leases_key = f"phashfleet:job:{driver.job_id}:leases"
    wait_for(
        lambda: driver.store.client.zcard(leases_key) >= 1,
        timeout=60,
        interval=0.02,
        what="the worker part-way through a leased batch",
    )
    killed_at = time.monotonic()
    victim.kill()
    assert driver.store.client.zcard(leases_key) >= 1, "the killed worker held a lease on a batch"
    workers("survivor")
    snap = driver.run_until_finished()
    recovery = time.monotonic() - killed_at
    assert snap.ok == 60 and snap.done_files == 60 and snap.total == 60
    records = records_of(driver.store, driver.job_id)
    assert sorted(r["path"] for r in records) == sorted(str(p) for p in photos.iterdir())  # each file once
    print(f"\nrecovered from SIGKILL and finished in {recovery:.1f}s (lease = timeout 5s + 15s margin)")
    assert recovery < 5 + 15 + 60


def test_a_rerun_serves_unchanged_files_from_the_cache(redis_env, photos, workers, tmp_path):
    workers()
    first = Driver(redis_env, photos, batch_size=30, name="first")
    assert first.run_until_finished().ok == 60
    changed = photos / "p07.jpg"
    photo_like(1200, 900, seed=999).save(changed, quality=85)  # new content, new mtime and ctime
    second = Driver(redis_env, photos, batch_size=30, name="second")
    assert second.run_until_finished().ok == 60
    records = {r["path"]: r for r in records_of(second.store, second.job_id)}
    cached = {p for p, r in records.items() if r.get("cached")}
    assert cached == set(records) - {str(changed)}
    before = {r["path"]: r["hash"] for r in records_of(first.store, first.job_id)}
    assert records[str(changed)]["hash"] != before[str(changed)]


class SlowImages(BaseHTTPRequestHandler):
    """Answers every GET with the same small PNG after SLOW_SECONDS: a batch that takes a while anywhere."""

    png = b""
    #: Images answered so far (a test resets it).
    served = 0

    def do_GET(self):
        time.sleep(SLOW_SECONDS)  # the server's own pace, not a wait in the test
        SlowImages.served += 1
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(self.png)))
        self.end_headers()
        self.wfile.write(self.png)

    def log_message(self, *args):
        pass


SLOW_SECONDS = 0.25


def slow_job(redis_env, site: str, name: str, *, batches: int, files: int) -> tuple[RedisJobStore, str]:
    """Create a job of `batches` batches of `files` slow images each and send them all: (store, job id)."""
    client = redis_client(redis_env["PHASHFLEET_REDIS_URL"], redis_env["PHASHFLEET_REDIS_PASSWORD"])
    store, broker = RedisJobStore(client), make_broker(client)
    job_id = f"test.{name}.{os.getpid()}"
    spec = parse_spec({"source": {"uri": site + "/"}, "batchSize": files})
    store.create(job_id, spec.hash_settings(), batches * files)
    for batch in range(batches):
        refs = [f"{site}/b{batch}/f{i}.png" for i in range(files)]
        assert hand_out_files(store, job_id, batch, refs, time.time(), listing_done=batch == batches - 1)
        send_batch(broker, job_id, batch)
    return store, job_id


@pytest.fixture
def slow_site():
    """Base URL of a loopback HTTP server whose every image takes SLOW_SECONDS to arrive."""
    buffer = io.BytesIO()
    photo_like(64, 48, seed=3).save(buffer, format="PNG")
    SlowImages.png = buffer.getvalue()
    with serving(SlowImages) as (_, base):
        yield base


def test_a_busy_worker_keeps_its_heartbeat_while_it_holds_every_message(redis_env, slow_site, workers):
    """A worker holding its whole prefetch fetches nothing from the queue, yet its heartbeat must stay fresh
    (its delay-queue consumer keeps polling), or a batch longer than the heartbeat timeout would be handed
    to a second worker mid-way (Bogdanp/dramatiq#692)."""
    timeout_ms = 1500
    store, job_id = slow_job(redis_env, slow_site, "heartbeat", batches=2, files=12)  # each batch 3 s: 2x the timeout
    client = store.client
    workers(PHASHFLEET_HEARTBEAT_TIMEOUT_MS=str(timeout_ms))
    acks = wait_for(
        lambda: next((k for k in client.scan_iter("dramatiq:__acks__.*") if client.scard(k) == 2), None),
        timeout=60,
        what="the worker holding both messages",
    )
    worker_id = acks.decode().split("__acks__.", 1)[1].rsplit(f".{queue()}", 1)[0]
    ages, first = [], time.monotonic()
    while client.scard(acks) == 2 and time.monotonic() - first < 60:
        beat = client.zscore("dramatiq:__heartbeats__", worker_id)
        ages.append(time.time() * 1000 - beat)
        time.sleep(0.05)  # sampling pace while the condition lasts
    held = time.monotonic() - first
    assert held > timeout_ms / 1000, f"the worker held both messages only {held:.1f}s: the check proved nothing"
    assert max(ages) < timeout_ms, f"heartbeat went {max(ages):.0f} ms stale while the worker was busy"
    snap = wait_for(lambda: (s := store.snapshot(job_id)).finished and s, timeout=60, what="both batches done")
    assert snap.ok == 24 and snap.done_files == 24
