"""Real worker processes on real Redis: double delivery counts once, SIGTERM drains, SIGKILL recovers."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from harness.operator_proc import phashfleet_argv
from harness.process import ManagedProcess
from harness.wait import wait_for
from phashfleet.actors import send_batch
from phashfleet.broker import make_broker, redis_client
from phashfleet.dispatch import ListingCursor, count_files, dispatch_tick
from phashfleet.hashing.synthetic import photo_like
from phashfleet.jobspec import parse_spec
from phashfleet.store import RedisJobStore


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """60 photo-like JPEGs big enough that a batch takes a noticeable moment to hash."""
    folder = tmp_path_factory.mktemp("photos")
    for i in range(60):
        photo_like(1200, 900, seed=i).save(folder / f"p{i:02d}.jpg", quality=85)
    return folder


@pytest.fixture
def workers(redis_env, photos, tmp_path):
    """Factory for `phashfleet worker` processes; all are stopped at the end."""
    procs: list[ManagedProcess] = []

    def start(name: str = "w") -> ManagedProcess:
        env = {**os.environ, **redis_env, "PHASHFLEET_ALLOWED_ROOTS": str(photos),
               "PHASHFLEET_SHUTDOWN_TIMEOUT": "30"}
        proc = ManagedProcess(f"{name}{len(procs)}", phashfleet_argv("worker", "--metrics-port", "0"),
                              tmp_path / f"{name}{len(procs)}.log", env=env)
        proc.start()
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.kill()


class Driver:
    """Plays the operator's part for one job: hands out batches and resends overdue ones."""

    def __init__(self, redis_env, photos: Path, *, batch_size: int = 10, timeout: int = 60, name: str = "job",
                 exact: bool = False) -> None:
        client = redis_client(redis_env["PHASHFLEET_REDIS_URL"], redis_env["PHASHFLEET_REDIS_PASSWORD"])
        self.broker = make_broker(client)
        self.store = RedisJobStore(client)
        self.spec = parse_spec({"source": {"uri": str(photos)}, "batchSize": batch_size, "timeoutSeconds": timeout,
                                "exact": exact})
        self.roots = (str(photos),)
        self.job_id = f"test.{name}.{os.getpid()}"
        self.store.create(self.job_id, self.spec.hash_settings(), count_files(self.spec, self.roots))
        self.cursor = ListingCursor(self.spec, self.roots)
        self.resent: list[int] = []

    def send(self, job_id: str, batch_id: int) -> None:
        send_batch(self.broker, job_id, batch_id)

    def tick(self, room: int = 2, window: int = 3):
        result = dispatch_tick(self.store, self.job_id, self.spec, self.cursor, self.send, now=time.time(),
                               room=room, window=window)
        self.resent += result.resent
        return self.store.snapshot(self.job_id)

    def run_until_finished(self, timeout: float = 180, **kw):
        return wait_for(lambda: (s := self.tick(**kw)).finished and s, timeout=timeout, interval=0.2,
                        what="job finished")


def test_the_same_message_delivered_twice_counts_once(redis_env, photos, workers):
    driver = Driver(redis_env, photos, batch_size=60)
    snap = driver.tick(room=1, window=1)
    assert snap.inflight == 1
    driver.send(driver.job_id, 0)  # a duplicate delivery of batch 0
    workers()
    snap = wait_for(lambda: (s := driver.store.snapshot(driver.job_id)).finished and s, timeout=120,
                    what="batch done")
    assert snap.ok == 60 and snap.done_files == 60
    assert driver.store.client.hlen(f"phashfleet:job:{driver.job_id}:results") == 60
    # The duplicate was taken off the queue and dropped, not hashed into the counts again.
    wait_for(lambda: driver.store.queue_length() == 0, timeout=30, what="queue drained")
    assert driver.store.snapshot(driver.job_id).ok == 60


def test_sigterm_drains_the_in_flight_batch(redis_env, photos, workers):
    driver = Driver(redis_env, photos, batch_size=20, exact=True)
    worker = workers()
    driver.tick(room=1, window=1)
    results_key = f"phashfleet:job:{driver.job_id}:results"
    wait_for(lambda: 0 < driver.store.client.hlen(results_key) < 20, timeout=60, interval=0.02,
             what="the worker part-way through the batch")
    worker.signal(signal.SIGTERM)
    assert worker.proc.wait(timeout=60) == 0
    snap = driver.store.snapshot(driver.job_id)
    assert snap.inflight == 0 and snap.ok == 20, "the batch in flight at SIGTERM was finished before exiting"


def test_sigkilled_worker_batches_come_back_and_count_once(redis_env, photos, workers):
    driver = Driver(redis_env, photos, batch_size=20, timeout=5, exact=True)  # exact: slow enough to catch
    victim = workers("victim")
    driver.tick()
    results_key = f"phashfleet:job:{driver.job_id}:results"
    leases_key = f"phashfleet:job:{driver.job_id}:leases"
    wait_for(lambda: driver.store.client.hlen(results_key) > 0 and driver.store.client.zcard(leases_key) >= 1,
             timeout=60, interval=0.02, what="the worker part-way through a leased batch")
    killed_at = time.monotonic()
    victim.kill()
    assert driver.store.client.zcard(leases_key) >= 1, "the killed worker held a lease on a batch"
    workers("survivor")
    snap = driver.run_until_finished()
    recovery = time.monotonic() - killed_at
    assert snap.ok == 60 and snap.done_files == 60 and snap.total == 60
    assert driver.store.client.hlen(results_key) == 60
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
    records = {r["path"]: r for r in second.store.iter_results(second.job_id)}
    cached = {p for p, r in records.items() if r.get("cached")}
    assert cached == set(records) - {str(changed)}
    before = {r["path"]: r["hash"] for r in first.store.iter_results(first.job_id)}
    assert records[str(changed)]["hash"] != before[str(changed)]
