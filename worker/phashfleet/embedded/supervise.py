"""Keep a local run's `phashfleet worker` processes running: a dead one is restarted, as the kubelet would.

Each worker is its own process group (the Dramatiq main process and what it forks), so a worker whose
main process was SIGKILLed leaves no orphan hashing behind. Restarts back off; a worker that keeps dying
soon after it starts is a crash loop, and the pool gives up (`CrashLoop`) instead of trying forever.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

log = logging.getLogger("phashfleet.run")

#: Seconds before the first restart of a worker; doubled for each further quick death in a row ...
RESTART_BACKOFF = 0.5
#: ... up to this.
RESTART_BACKOFF_MAX = 8.0
#: A worker that ran this long (s) before it died was healthy: its count of quick deaths starts afresh.
HEALTHY_AFTER = 30.0
#: Quick deaths in a row of one worker that end the run.
MAX_QUICK_DEATHS = 5
#: Seconds a stopping worker gets to hand its batches back (SIGTERM) before it is killed.
STOP_TIMEOUT = 60.0


class CrashLoop(RuntimeError):
    """A worker kept dying soon after it started."""


def worker_argv() -> list[str]:
    """The command of one worker: one Dramatiq process, metrics on any free port."""
    return [sys.executable, "-m", "phashfleet.cli", "worker", "--processes", "1", "--metrics-port", "0"]


def restart_delay(deaths: int, *, backoff: float = RESTART_BACKOFF, maximum: float = RESTART_BACKOFF_MAX) -> float:
    """Seconds to wait before restarting a worker after its `deaths`-th quick death in a row."""
    return min(maximum, backoff * 2.0 ** max(0, deaths - 1))


@dataclass
class _Slot:
    """One worker the pool keeps running."""

    index: int
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    deaths: int = 0  # quick deaths in a row
    restart_at: float | None = None


class WorkerPool:
    """`workers` supervised worker processes with environment `env`."""

    def __init__(
        self,
        workers: int,
        env: dict[str, str],
        *,
        argv: list[str] | None = None,
        backoff: float = RESTART_BACKOFF,
        max_backoff: float = RESTART_BACKOFF_MAX,
        healthy_after: float = HEALTHY_AFTER,
        max_quick_deaths: int = MAX_QUICK_DEATHS,
    ) -> None:
        self.env = env
        self.argv = argv or worker_argv()
        self.backoff, self.max_backoff = backoff, max_backoff
        self.healthy_after, self.max_quick_deaths = healthy_after, max_quick_deaths
        self.slots = [_Slot(i) for i in range(workers)]
        self.restarts = 0

    def start(self) -> WorkerPool:
        """Start every worker."""
        for slot in self.slots:
            self._spawn(slot)
        return self

    def pids(self) -> list[int]:
        """Process ids of the running workers' main processes."""
        return [s.proc.pid for s in self.slots if s.proc is not None and s.proc.poll() is None]

    def check(self) -> int:
        """Reap dead workers, restart those whose backoff is over; return how many were found dead now.

        Raises CrashLoop when a worker died `max_quick_deaths` times in a row, each time within
        `healthy_after` seconds of its start.
        """
        now, died = time.monotonic(), 0
        for slot in self.slots:
            if slot.proc is not None and slot.proc.poll() is not None:
                died += 1
                self._on_death(slot, slot.proc, now)
            if slot.proc is None and slot.restart_at is not None and now >= slot.restart_at:
                self.restarts += 1
                self._spawn(slot)
        return died

    def _on_death(self, slot: _Slot, proc: subprocess.Popen[bytes], now: float) -> None:
        code = proc.returncode
        _kill_group(proc.pid)  # what it forked (a hashing process whose main was SIGKILLed) goes too
        slot.proc = None
        slot.deaths = 1 if now - slot.started >= self.healthy_after else slot.deaths + 1
        if slot.deaths >= self.max_quick_deaths:
            raise CrashLoop(
                f"worker {slot.index} exited {slot.deaths} times in a row, each within "
                f"{self.healthy_after:.0f} s of its start (last exit code {code}); see its log above"
            )
        delay = restart_delay(slot.deaths, backoff=self.backoff, maximum=self.max_backoff)
        slot.restart_at = now + delay
        log.warning("worker %d exited with code %s; restarting it in %.1f s", slot.index, code, delay)

    def _spawn(self, slot: _Slot) -> None:
        slot.proc = subprocess.Popen(self.argv, env=self.env, process_group=0)
        slot.started, slot.restart_at = time.monotonic(), None

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM every worker (in-flight batches are handed back), wait up to `timeout`, then kill what is left."""
        running = [s.proc for s in self.slots if s.proc is not None]
        for proc in running:
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + timeout
        try:
            for proc in running:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(max(0.0, deadline - time.monotonic()))
        finally:  # even when a second Ctrl-C cuts the wait short: no worker outlives the run
            for proc in running:
                _kill_group(proc.pid)
                proc.wait()
        for slot in self.slots:
            slot.proc, slot.restart_at = None, None


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
