"""A local run's worker pool: a dead worker is restarted with backoff; one that keeps dying ends the run."""

from __future__ import annotations

import os
import sys
import time

import pytest

from harness.wait import wait_for
from phashfleet.embedded.supervise import CrashLoop, WorkerPool, restart_delay


def _poll_until_crash_loop(pool: WorkerPool, timeout: float) -> CrashLoop:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            pool.check()
        except CrashLoop as exc:
            return exc
        time.sleep(0.01)
    raise AssertionError(f"no crash loop after {timeout} s ({pool.restarts} restarts)")


def test_restart_delay_doubles_up_to_its_cap():
    assert [restart_delay(n, backoff=0.5, maximum=4) for n in range(1, 6)] == [0.5, 1, 2, 4, 4]


def test_a_worker_that_keeps_dying_at_once_is_a_crash_loop_naming_its_exit_code():
    pool = WorkerPool(
        2,
        dict(os.environ),
        argv=[sys.executable, "-c", "raise SystemExit(3)"],
        backoff=0.01,
        max_backoff=0.05,
        max_quick_deaths=4,
    ).start()
    try:
        exc = _poll_until_crash_loop(pool, timeout=60)
    finally:
        pool.stop(timeout=5)
    assert "4 times in a row" in str(exc) and "exit code 3" in str(exc)
    assert pool.restarts >= 3  # every worker before the last death was restarted


def test_a_worker_that_ran_long_enough_is_restarted_without_end(tmp_path):
    marker = tmp_path / "starts"
    script = f"open({str(marker)!r}, 'a').write('x')"
    pool = WorkerPool(
        1,
        dict(os.environ),
        argv=[sys.executable, "-c", script],
        backoff=0.01,
        max_backoff=0.01,
        healthy_after=0.0,
        max_quick_deaths=2,
    ).start()
    try:

        def started_often() -> bool:
            pool.check()
            return marker.exists() and len(marker.read_text()) >= 5

        wait_for(started_often, timeout=60, interval=0.01, what="five starts of a worker that exits")
    finally:
        pool.stop(timeout=5)


def test_stop_ends_every_worker_and_what_it_forked(tmp_path):
    pidfile = tmp_path / "grandchild"
    # A worker that forks a child which ignores SIGTERM, as Dramatiq's main process forks its workers.
    script = (
        "import os, signal, time\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        f"    open({str(pidfile)!r}, 'w').write(str(os.getpid()))\n"
        "    time.sleep(600)\n"
        "time.sleep(600)\n"
    )
    pool = WorkerPool(1, dict(os.environ), argv=[sys.executable, "-c", script]).start()
    grandchild = int(wait_for(lambda: pidfile.exists() and pidfile.read_text(), timeout=30, what="the fork"))
    pool.stop(timeout=1)
    wait_for(lambda: not _running(grandchild), timeout=10, interval=0.01, what="the fork to be gone")


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("deaths", [1, 4])
def test_pool_check_reports_the_deaths_it_found(deaths):
    pool = WorkerPool(deaths, dict(os.environ), argv=[sys.executable, "-c", "pass"], backoff=60).start()
    try:
        for slot in pool.slots:
            slot.proc.wait()
        assert pool.check() == deaths
        assert pool.check() == 0  # dead ones wait out their backoff, and count once
    finally:
        pool.stop(timeout=5)
