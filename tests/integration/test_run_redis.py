"""`phashfleet run --redis`: its own queue and keys beside a fleet on the same Redis; a killed worker is replaced."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path

import pytest
import yaml

from harness.operator_proc import phashfleet_argv
from harness.process import ManagedProcess
from harness.synthetic import photo_like
from harness.wait import wait_for
from phashfleet.job.dispatch import dispatch_tick
from phashfleet.job.lister import list_job_here
from phashfleet.job.spec import parse_spec
from phashfleet.state import result_store
from phashfleet.state.redis_store import RedisJobStore
from phashfleet.worker.actor import send_batch
from phashfleet.worker.broker import make_broker, redis_client

TTL = 300
#: The fleet's prefix and queue (what a process that sets neither uses).
FLEET = "phashfleet"


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """80 files of 1200x900 photos (copies of 4: generating is slower than hashing), a few seconds of work."""
    folder = tmp_path_factory.mktemp("run-photos")
    originals = []
    for i in range(4):
        originals.append(folder / f"p{i:03d}.jpg")
        photo_like(1200, 900, seed=i).save(originals[-1], quality=85)
    for i in range(4, 80):
        shutil.copyfile(originals[i % 4], folder / f"p{i:03d}.jpg")
    return folder


def _manifest(tmp_path: Path, photos: Path) -> Path:
    path = tmp_path / "job.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "phashfleet.io/v1alpha1",
                "kind": "PhashJob",
                "metadata": {"name": "local"},
                "spec": {
                    "source": {"uri": f"file://{photos}"},
                    "batchSize": 4,
                    "ttlSecondsAfterFinished": TTL,
                    "output": {"uri": f"file://{tmp_path / 'out' / 'hashes.jsonl'}", "format": "jsonl"},
                },
            }
        )
    )
    return path


def _clean_env(redis_env: dict[str, str], **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PHASHFLEET_KEY_PREFIX", "PHASHFLEET_QUEUE")}
    return {**env, **redis_env, **extra}


def _start_run(tmp_path: Path, photos: Path, redis_env: dict[str, str], jobs: int, **env: str) -> ManagedProcess:
    argv = phashfleet_argv(
        "run", str(_manifest(tmp_path, photos)), "--redis", redis_env["PHASHFLEET_REDIS_URL"], "--jobs", str(jobs)
    )
    run = ManagedProcess("run", argv, tmp_path / "run.log", env=_clean_env(redis_env, **env))
    run.start()
    return run


def _finished(run: ManagedProcess, timeout: float) -> dict:
    """Wait for the run to exit; return its status (the JSON it prints, after any log lines)."""
    wait_for(lambda: not run.alive, timeout=timeout, what="phashfleet run to exit")
    text = run.log_path.read_text()
    start = text.rfind("\n{\n")  # nested objects are indented: only the status starts a line with {
    assert start >= 0, f"no status in the run's output:\n{run.log_tail(60)}"
    return json.JSONDecoder().raw_decode(text, start + 1)[0]


def _ppid(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def _cpu_ticks(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return -1
    return int(fields[11]) + int(fields[12])  # utime + stime


def _children(pid: int) -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and _ppid(int(p)) == pid]


def _descendants(pid: int) -> set[int]:
    found, todo = set(), [pid]
    while todo:
        for child in _children(todo.pop()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _kill_all(run: ManagedProcess, pids: set[int]) -> None:
    """Clean up after a test, whatever it left: the run and every worker process it had."""
    run.kill()
    for pid in pids:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


def _hashed_so_far(client) -> int:
    """Records of the local run's job, wherever its keys live."""
    done = 0
    for key in client.scan_iter(match="*:job:local.*:counts", count=1000):
        done += sum(int(v) for v in client.hvals(key))
    return done


def _records(tmp_path: Path) -> list[dict]:
    return [json.loads(line) for line in (tmp_path / "out" / "hashes.jsonl").read_text().splitlines()]


def test_a_run_beside_a_fleet_worker_on_the_same_redis_keeps_its_batches_and_keys(redis_env, photos, tmp_path):
    elsewhere = tmp_path / "fleet-photos"
    elsewhere.mkdir()
    photo_like(320, 240, seed=99).save(elsewhere / "fleet.jpg")
    # A fleet worker on the default queue and prefix whose roots do not hold the run's files: any batch of
    # the run it took would be `outside_roots` failures.
    fleet = ManagedProcess(
        "fleet-worker",
        phashfleet_argv("worker", "--metrics-port", "0"),
        tmp_path / "fleet.log",
        env=_clean_env(redis_env, PHASHFLEET_ALLOWED_ROOTS=str(elsewhere)),
    )
    fleet.start()
    client = redis_client(redis_env["PHASHFLEET_REDIS_URL"], redis_env["PHASHFLEET_REDIS_PASSWORD"])
    try:
        # The fleet worker is up and consuming: it hashes a fleet job's batch.
        store, broker = RedisJobStore(client), make_broker(client)
        spec = parse_spec({"source": {"uri": str(elsewhere)}})
        store.create("fleet.job", spec.hash_settings(), 0)
        dispatch_tick(
            store,
            "fleet.job",
            spec,
            list_job_here(store, result_store.from_env(), "fleet.job", spec, (str(elsewhere),)),
            lambda j, b: send_batch(broker, j, b),
            now=time.time(),
            room=1,
            window=1,
        )
        wait_for(lambda: store.snapshot("fleet.job").finished, timeout=60, what="the fleet worker to hash its job")

        run = _start_run(tmp_path, photos, redis_env, jobs=1)
        status = _finished(run, timeout=180)
        assert run.proc.returncode == 0, run.log_tail(60)
        assert status["phase"] == "Succeeded", status
        assert (status["total"], status["succeeded"], status["failed"]) == (80, 80, 0), status["failures"]
        assert fleet.alive, fleet.log_tail()

        # Nothing of the run under the fleet's names; the run's queue is gone, its keys expire.
        assert client.smembers(f"{FLEET}:jobs") == {b"fleet.job"}
        assert not list(client.scan_iter(match=f"{FLEET}:job:local.*"))
        run_queues = list(client.scan_iter(match="dramatiq:*run-*"))
        assert run_queues == []
        run_keys = list(client.scan_iter(match=f"{FLEET}-run-*"))
        assert run_keys and all(0 < client.ttl(k) <= TTL for k in run_keys), {k: client.ttl(k) for k in run_keys}
        assert sorted(r["path"] for r in _records(tmp_path)) == sorted(str(p) for p in photos.iterdir())
    finally:
        fleet.stop()


@pytest.mark.parametrize("victim", ["worker", "consumer"])
def test_a_sigkilled_worker_is_replaced_and_the_job_ends_exact(redis_env, photos, tmp_path, victim):
    client = redis_client(redis_env["PHASHFLEET_REDIS_URL"], redis_env["PHASHFLEET_REDIS_PASSWORD"])
    run = _start_run(tmp_path, photos, redis_env, jobs=1)  # one worker: only its replacement can finish
    seen: set[int] = set()
    try:
        wait_for(lambda: _hashed_so_far(client) > 0, timeout=120, interval=0.02, what="the run to start hashing")
        (worker,) = _children(run.pid)  # the `phashfleet worker` (Dramatiq's main process)
        seen = {worker} | _descendants(worker)
        if victim == "worker":
            target = worker  # what it forked is orphaned, and must not outlive it
        else:
            # Dramatiq's worker process, the parent of the busiest process (the file being hashed); killing
            # that one instead would be a file crashing its decoder, a `failed` record by design.
            target = _ppid(max(_descendants(worker), key=_cpu_ticks))
        os.kill(target, signal.SIGKILL)
        killed_at, records_then = time.monotonic(), _hashed_so_far(client)

        status = _finished(run, timeout=180)
        print(
            f"killed the {victim} at {records_then} of 80 records; the run ended "
            f"{time.monotonic() - killed_at:.1f} s later"
        )
        assert run.proc.returncode == 0, run.log_tail(60)
        assert status["phase"] == "Succeeded", status
        assert (status["total"], status["succeeded"], status["failed"], status["skipped"]) == (80, 80, 0, 0)
        records = _records(tmp_path)
        assert sorted(r["path"] for r in records) == sorted(str(p) for p in photos.iterdir())
        assert "worker 0 exited with code" in run.log_path.read_text()
        assert not [pid for pid in seen if _alive(pid)], "a worker process outlived the run"
    finally:
        _kill_all(run, seen)


def test_a_sigterm_to_the_run_stops_its_workers_and_deletes_its_queue(redis_env, photos, tmp_path):
    client = redis_client(redis_env["PHASHFLEET_REDIS_URL"], redis_env["PHASHFLEET_REDIS_PASSWORD"])
    run = _start_run(tmp_path, photos, redis_env, jobs=2)
    seen: set[int] = set()
    try:
        wait_for(lambda: _hashed_so_far(client) > 0, timeout=120, interval=0.02, what="the run to start hashing")
        seen = _descendants(run.pid)
        os.kill(run.pid, signal.SIGTERM)  # the run only: its workers are not in its process group
        wait_for(lambda: not run.alive, timeout=90, what="the run to exit")
        assert run.proc.returncode == 128 + signal.SIGTERM, run.log_tail(60)
        wait_for(lambda: not [pid for pid in seen if _alive(pid)], timeout=10, what="no worker left behind")
        assert list(client.scan_iter(match="dramatiq:*run-*")) == []
    finally:
        _kill_all(run, seen)


def test_a_run_whose_worker_keeps_crashing_ends_failed_saying_so(redis_env, photos, monkeypatch):
    from phashfleet.embedded import run as localrun
    from phashfleet.embedded import supervise

    monkeypatch.setattr(supervise, "worker_argv", lambda: [sys.executable, "-c", "raise SystemExit(3)"])
    monkeypatch.setenv("PHASHFLEET_REDIS_PASSWORD", redis_env["PHASHFLEET_REDIS_PASSWORD"])
    spec = parse_spec({"source": {"uri": f"file://{photos}"}, "batchSize": 4, "ttlSecondsAfterFinished": TTL})
    started = time.monotonic()
    result = localrun.run_with_redis(
        spec, "local.crashing.1", (str(photos),), redis_env["PHASHFLEET_REDIS_URL"], jobs=2
    )
    print(f"the crash-looping run gave up after {time.monotonic() - started:.1f} s")
    assert not result.ok and result.status["phase"] == "Failed"
    (true,) = [c for c in result.status["conditions"] if c["status"] == "True"]
    assert true["reason"] == "WorkersCrashing" and "exit code 3" in true["message"], true
    client = redis_client(redis_env["PHASHFLEET_REDIS_URL"], redis_env["PHASHFLEET_REDIS_PASSWORD"])
    assert list(client.scan_iter(match="dramatiq:*run-*")) == []
    run_keys = list(client.scan_iter(match=f"{FLEET}-run-*"))
    assert run_keys and all(0 < client.ttl(k) <= TTL for k in run_keys), {k: client.ttl(k) for k in run_keys}


def test_a_second_run_of_a_folder_reads_the_content_cache_of_the_first(redis_env, photos, tmp_path):
    """Each run has keys of its own, yet local runs share one content cache (in their result store, not in
    Redis), so an unchanged folder is not hashed again."""
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    # A result store of this test's own: the session's holds the cache of the other tests' runs of `photos`.
    store = {"PHASHFLEET_RESULT_STORE": str(tmp_path / "store")}
    status = _finished(_start_run(first, photos, redis_env, jobs=1, **store), timeout=180)
    assert status["succeeded"] == 80, status
    assert not any(r.get("cached") for r in _records(first))
    status = _finished(_start_run(second, photos, redis_env, jobs=1, **store), timeout=180)
    assert (status["phase"], status["succeeded"]) == ("Succeeded", 80), status
    assert all(r.get("cached") for r in _records(second)), _records(second)[:3]
    client = redis_client(redis_env["PHASHFLEET_REDIS_URL"], redis_env["PHASHFLEET_REDIS_PASSWORD"])
    assert not list(client.scan_iter(match="*cache*"))  # the content cache is not in Redis at all
