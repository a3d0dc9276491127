"""Hash files in child processes, so a file that hangs in C code can be killed at its timeout.

A Python-level alarm cannot stop Pillow or libjpeg inside one call, and a thread cannot be killed,
so each file is handed to a child process; the parent waits for its answer until the file's
deadline, then kills and replaces that child and records ``timeout``. The batch goes on.

Children are plain ``python -m phashfleet.hashing.child`` processes (not multiprocessing's fork or
spawn): nothing of the caller is copied or re-imported, so the pool is safe to use from any
thread of any program, and a child's output never mixes with the caller's stdout.
"""

from __future__ import annotations

import atexit
import os
import subprocess
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Iterable, Iterator
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from phashfleet.hashing.settings import Settings
from phashfleet.results import make_record

#: Seconds a new hashing process may take to import and report ready (not part of any file's time).
STARTUP_TIMEOUT = 120.0
#: Files handed to one hashing process at once: the one it hashes and the next, waiting in its pipe, so
#: it goes straight on instead of waiting for this process to read the answer and reply.
QUEUE_DEPTH = 2
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])  # the folder holding `phashfleet`


class _Child:
    """One hashing process and the task it is working on."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self.to_child: Connection | None = None
        self.from_child: Connection | None = None
        self.ready = False
        self.tasks: deque[tuple[int, str]] = deque()  # (index, ref) sent, in order; the first is being hashed
        self.deadline = 0.0  # when the first task's time is up

    def launch(self) -> None:
        """Start the process if it is not running (does not wait for it)."""
        if self.process is not None and self.process.poll() is None:
            return
        self.kill()
        down_r, down_w = os.pipe()
        up_r, up_w = os.pipe()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH")) if p)
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "phashfleet.hashing.child", str(down_r), str(up_w)],
                pass_fds=(down_r, up_w),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                env=env,
                start_new_session=True,  # a Ctrl-C or a signal to our process group is the parent's to handle
            )
        finally:
            os.close(down_r)
            os.close(up_w)
        self.to_child = Connection(down_w, readable=False)
        self.from_child = Connection(up_r, writable=False)
        self.ready = False

    @property
    def down(self) -> Connection:
        """The pipe that sends files to the launched process."""
        if self.to_child is None:
            raise RuntimeError("hashing process not launched")
        return self.to_child

    @property
    def up(self) -> Connection:
        """The pipe the launched process answers on."""
        if self.from_child is None:
            raise RuntimeError("hashing process not launched")
        return self.from_child

    def await_ready(self) -> None:
        """Wait until the launched process has imported everything and said so."""
        if self.ready:
            return
        if not self.up.poll(STARTUP_TIMEOUT) or self.up.recv() != "ready":
            self.kill()
            raise RuntimeError(f"hashing process did not start within {STARTUP_TIMEOUT:g} s")
        self.ready = True

    def send(self, index: int, ref: str, settings: Settings) -> bool:
        """Queue one file for the process (a fresh one if it died while idle); False if it could not take it.

        The first file's deadline starts now; a queued one's starts when the file before it is done.
        """
        for attempt in (1, 2):
            if self.tasks:  # busy: a failed send means the process died, which the caller will read as EOF
                try:
                    self.down.send((index, ref, settings))
                except OSError:
                    return False
                self.tasks.append((index, ref))
                return True
            self.launch()
            try:
                self.await_ready()
                self.down.send((index, ref, settings))
                break
            except (OSError, EOFError):
                self.kill()
                if attempt == 2:
                    raise
        self.tasks.append((index, ref))
        self.deadline = time.monotonic() + settings.timeout_seconds
        return True

    def finished(self, settings: Settings) -> None:
        """The first task is done: drop it and start the next one's clock."""
        self.tasks.popleft()
        self.deadline = time.monotonic() + settings.timeout_seconds

    def give_up(self, again: deque[tuple[int, str]]) -> tuple[int, str, int | None]:
        """Kill the process over its current file; put the files queued behind it at the front of `again`.

        Returns the file it was hashing (index, ref) and the exit status `kill` reports.
        """
        (index, ref), queued = self.tasks[0], list(self.tasks)[1:]
        code = self.kill()
        again.extendleft(reversed(queued))
        return index, ref, code

    def kill(self) -> int | None:
        """Kill the process now (its queued tasks are dropped); return its exit status (negative: a signal)."""
        self.tasks.clear()
        self.ready = False
        code = None
        if self.process is not None:
            if self.process.poll() is None:
                self.process.kill()
            code = self.process.wait()
            self.process = None
        for conn in (self.to_child, self.from_child):
            if conn is not None:
                conn.close()
        self.to_child = self.from_child = None
        return code

    def stop(self) -> None:
        """Ask an idle process to exit; kill it if it does not."""
        if self.process is not None and not self.tasks and self.ready:
            try:
                self.down.send(None)
                self.process.wait(timeout=2)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self.kill()


class HashPool:
    """N child processes hashing files with a per-file timeout; reuse it across batches.

    Parameters:
      processes(int): how many files are hashed at once (one process each).
    """

    def __init__(self, processes: int = 1) -> None:
        if processes < 1:
            raise ValueError("processes must be >= 1")
        self.processes = processes
        self._children = [_Child() for _ in range(processes)]
        self._lock = threading.Lock()
        _POOLS.add(self)

    def imap(self, refs: Iterable[str], settings: Settings) -> Iterator[dict[str, Any]]:
        """Yield one record per ref, in input order; refs are read lazily (a stream is fine)."""
        with self._lock:
            yield from self._run(iter(refs), settings)

    def _run(self, refs: Iterator[str], settings: Settings) -> Iterator[dict[str, Any]]:
        for child in self._children:  # start them side by side, not one after another
            child.launch()
        done: dict[int, dict[str, Any]] = {}
        again: deque[tuple[int, str]] = deque()  # queued behind a file whose process died: to send anew
        next_in = next_out = 0
        exhausted = False

        def feed() -> None:
            nonlocal next_in, exhausted
            ref: str | None
            for child in self._children:
                while len(child.tasks) < QUEUE_DEPTH and (again or not exhausted):
                    if again:
                        index, ref = again.popleft()
                    else:
                        ref = next(refs, None)
                        if ref is None:
                            exhausted = True
                            break
                        index, next_in = next_in, next_in + 1
                    if not child.send(index, ref, settings):
                        again.appendleft((index, ref))
                        break

        try:
            while True:
                feed()
                busy = [c for c in self._children if c.tasks]
                if not busy:
                    break
                timeout = max(0.0, min(c.deadline for c in busy) - time.monotonic())
                ready = wait([c.up for c in busy], timeout=timeout)
                for child in busy:
                    if child.from_child in ready:
                        self._collect(child, settings, done, again)
                    elif time.monotonic() >= child.deadline:
                        index, ref, _ = child.give_up(again)
                        done[index] = _failed(
                            ref,
                            settings,
                            f"timeout: no result within {settings.timeout_seconds:g} s; hashing process killed",
                        )
                # Hand freed children their next file before yielding: they hash while the caller
                # records what came back, instead of sitting idle for the caller's whole turn.
                feed()
                while next_out in done:
                    yield done.pop(next_out)
                    next_out += 1
        finally:
            for child in self._children:
                if child.tasks:  # abandoned mid-batch: its answers must not leak into the next
                    child.kill()

    @staticmethod
    def _collect(
        child: _Child, settings: Settings, done: dict[int, dict[str, Any]], again: deque[tuple[int, str]]
    ) -> None:
        """Take a finished record from a child, or record its death (what it had queued is sent anew)."""
        try:
            got, record = child.up.recv()
        except (EOFError, OSError):
            index, ref, code = child.give_up(again)
            how = f"signal {-code}" if code is not None and code < 0 else f"exit status {code}"
            done[index] = _failed(ref, settings, f"crashed: hashing process died ({how})")
            return
        child.finished(settings)
        done[got] = record

    def close(self) -> None:
        """Stop every child process."""
        for child in self._children:
            child.stop()

    def __enter__(self) -> HashPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _failed(ref: str, settings: Settings, reason: str) -> dict[str, Any]:
    """A failed record for a file the pool itself gave up on."""
    return make_record(ref, algorithm=settings.algorithm, hash_size=settings.hash_size, status="failed", reason=reason)


_POOLS: weakref.WeakSet[HashPool] = weakref.WeakSet()
_local = threading.local()


def hash_many(refs: Iterable[str], settings: Settings, jobs: int = 1) -> Iterator[dict[str, Any]]:
    """Hash refs with ``jobs`` child processes (kept per thread between calls), records in input order."""
    pool = getattr(_local, "pool", None)
    if pool is None or pool.processes != jobs:
        if pool is not None:
            pool.close()
        pool = _local.pool = HashPool(jobs)
    yield from pool.imap(refs, settings)


@atexit.register
def _close_all() -> None:
    for pool in list(_POOLS):
        pool.close()
