"""Hash files in child processes, so a file that hangs in C code can be killed at its timeout.

A Python-level alarm cannot stop Pillow or libjpeg inside one call, and a thread cannot be killed,
so each file is handed to a child process; the parent waits for its answer until the file's
deadline, then kills and replaces that child and records ``timeout``. The batch goes on.

Files go to a child in chunks, one pipe message for as many files as take about CHUNK_SECONDS
(dozens of tiny files, one big photo), and each answer comes back on its own as soon as its file
is done, so the parent always knows which file a child is on. The parent reads whatever answers
are there in one go, and while every child has plenty queued it lets answers gather for a moment
instead of waking for each one: a tiny file costs less to hash than a round trip per file.

Children are plain ``python -m phashfleet.hashing.child`` processes (not multiprocessing's fork or
spawn): nothing of the caller is copied or re-imported, so the pool is safe to use from any
thread of any program, and a child's output never mixes with the caller's stdout.
"""

from __future__ import annotations

import atexit
import os
import select
import subprocess
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Iterable, Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from phashfleet.hashing.frames import FrameReader
from phashfleet.hashing.settings import Settings
from phashfleet.results import make_record

#: Seconds a new hashing process may take to import and report ready (not part of any file's time).
STARTUP_TIMEOUT = 120.0
#: Seconds of hashing sent to a process in one message; it has up to two such chunks queued, and gets
#: the next when it is down to one, so it never waits for this process to read its answers and reply.
CHUNK_SECONDS = 0.005
#: Most files in one chunk, and most bytes of their names (two chunks always fit a pipe's buffer, so
#: sending one never blocks on a process that is itself blocked answering).
MAX_CHUNK = 64
MAX_CHUNK_BYTES = 16_384
#: How long the parent lets answers gather while every busy child has at least CHUNK_SECONDS queued.
GATHER_SECONDS = CHUNK_SECONDS / 2
#: Weight of the latest file in the running mean of seconds per file that sizes the chunks.
MEAN_WEIGHT = 0.1
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])  # the folder holding `phashfleet`

Task = tuple[int, str]  # (index in the input, ref)
Timed = tuple[dict[str, Any], float]  # (record, seconds the file took)


class _Child:
    """One hashing process and the tasks it has been sent."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self.to_child: Connection | None = None
        self.from_child: int | None = None
        self.reader = FrameReader()
        self.ready = False
        self.tasks: deque[Task] = deque()  # sent, in order; the first is being hashed
        self.since = 0.0  # when the first task's time started
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
        self.from_child = up_r
        self.reader = FrameReader()
        self.ready = False

    @property
    def down(self) -> Connection:
        """The pipe that sends files to the launched process."""
        if self.to_child is None:
            raise RuntimeError("hashing process not launched")
        return self.to_child

    @property
    def up(self) -> int:
        """The pipe (its file descriptor) the launched process answers on."""
        if self.from_child is None:
            raise RuntimeError("hashing process not launched")
        return self.from_child

    def await_ready(self) -> None:
        """Wait until the launched process has imported everything and said so."""
        if self.ready:
            return
        deadline = time.monotonic() + STARTUP_TIMEOUT
        frames: list[Any] | None = []
        while frames == [] and select.select([self.up], [], [], max(0.0, deadline - time.monotonic()))[0]:
            frames = self.reader.read(self.up)
        if frames is None:
            raise EOFError("hashing process exited while starting")
        if frames != ["ready"]:
            self.kill()
            raise RuntimeError(f"hashing process did not start within {STARTUP_TIMEOUT:g} s")
        self.ready = True

    def send(self, tasks: list[Task], settings: Settings) -> bool:
        """Queue files for the process (a fresh one if it died while idle); False if it could not take them.

        The first file's time starts now if the process was idle; a queued one's when the file before it is done.
        """
        for attempt in (1, 2):
            if self.tasks:  # busy: a failed send means the process died, which the caller will read as EOF
                try:
                    self.down.send((tasks, settings))
                except OSError:
                    return False
                self.tasks.extend(tasks)
                return True
            self.launch()
            try:
                self.await_ready()
                self.down.send((tasks, settings))
                break
            except (OSError, EOFError):
                self.kill()
                if attempt == 2:
                    raise
        self.tasks.extend(tasks)
        self.restart_clock(settings)
        return True

    def answers(self) -> list[tuple[int, dict[str, Any], float]] | None:
        """The files the process has answered since the last call (drops them from its tasks); None if it died."""
        frames = self.reader.read(self.up)
        if frames is None:
            return None
        for index, _, _ in frames:
            if self.tasks.popleft()[0] != index:
                raise RuntimeError("hashing process answered out of order")
        return frames

    def restart_clock(self, settings: Settings) -> None:
        """The first task's time starts now."""
        self.since = time.monotonic()
        self.deadline = self.since + settings.timeout_seconds

    def give_up(self, again: deque[Task]) -> tuple[int, str, int | None]:
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
        if self.to_child is not None:
            self.to_child.close()
        if self.from_child is not None:
            os.close(self.from_child)
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
        self._per_file: float | None = None  # running mean of seconds per file, across batches
        _POOLS.add(self)

    def imap(self, refs: Iterable[str], settings: Settings) -> Iterator[dict[str, Any]]:
        """Yield one record per ref, in input order; refs are read lazily (a stream is fine)."""
        for record, _ in self.imap_timed(refs, settings):
            yield record

    def imap_timed(self, refs: Iterable[str], settings: Settings) -> Iterator[Timed]:
        """Like imap, with the seconds each file took its hashing process (or until it was given up on)."""
        with self._lock:
            yield from self._run(iter(refs), settings)

    def _chunk(self) -> int:
        """Files per chunk: about CHUNK_SECONDS of them at the running mean (one until a file has been timed)."""
        if self._per_file is None:
            return 1
        return max(1, min(MAX_CHUNK, int(CHUNK_SECONDS / max(self._per_file, 1e-9))))

    def _run(self, refs: Iterator[str], settings: Settings) -> Iterator[Timed]:
        for child in self._children:  # start them side by side, not one after another
            child.launch()
        done: dict[int, Timed] = {}
        again: deque[Task] = deque()  # queued behind a file whose process died: to send anew
        next_in = next_out = 0
        exhausted = False

        def take(count: int) -> list[Task]:
            nonlocal next_in, exhausted
            tasks: list[Task] = []
            size = 0
            while len(tasks) < count and size < MAX_CHUNK_BYTES and (again or not exhausted):
                if again:
                    task = again.popleft()
                else:
                    ref = next(refs, None)
                    if ref is None:
                        exhausted = True
                        break
                    task, next_in = (next_in, ref), next_in + 1
                tasks.append(task)
                size += len(task[1])
            return tasks

        def feed() -> None:
            chunk = self._chunk()
            for child in self._children:
                if len(child.tasks) > chunk:
                    continue  # more than a chunk still queued: the next goes when it is down to one
                tasks = take(2 * chunk - len(child.tasks))
                if tasks and not child.send(tasks, settings):
                    again.extendleft(reversed(tasks))

        try:
            while True:
                feed()
                busy = [c for c in self._children if c.tasks]
                if not busy:
                    break
                first_deadline = min(c.deadline for c in busy)
                if self._per_file is not None and all(len(c.tasks) * self._per_file >= CHUNK_SECONDS for c in busy):
                    # Each has work queued for longer than this pause: its answers wait in the pipe and
                    # are read together, instead of this process waking (and being woken) for each one.
                    time.sleep(max(0.0, min(GATHER_SECONDS, first_deadline - time.monotonic())))
                timeout = max(0.0, first_deadline - time.monotonic())
                ready = select.select([c.up for c in busy], [], [], timeout)[0]
                for child in busy:
                    if child.up in ready:
                        self._collect(child, settings, done, again)
                    elif time.monotonic() >= child.deadline:
                        seconds = time.monotonic() - child.since
                        index, ref, _ = child.give_up(again)
                        reason = f"timeout: no result within {settings.timeout_seconds:g} s; hashing process killed"
                        done[index] = (_failed(ref, settings, reason), seconds)
                # Hand freed children their next files before yielding: they hash while the caller
                # records what came back, instead of sitting idle for the caller's whole turn.
                feed()
                while next_out in done:
                    yield done.pop(next_out)
                    next_out += 1
        finally:
            for child in self._children:
                if child.tasks:  # abandoned mid-batch: its answers must not leak into the next
                    child.kill()

    def _collect(self, child: _Child, settings: Settings, done: dict[int, Timed], again: deque[Task]) -> None:
        """Take the records a child has finished, or record its death (what it had queued is sent anew)."""
        try:
            answers = child.answers()
        except OSError:
            answers = None
        if answers is None:
            seconds = time.monotonic() - child.since
            index, ref, code = child.give_up(again)
            how = f"signal {-code}" if code is not None and code < 0 else f"exit status {code}"
            done[index] = (_failed(ref, settings, f"crashed: hashing process died ({how})"), seconds)
            return
        for index, record, seconds in answers:
            done[index] = (record, seconds)
            mean = self._per_file
            self._per_file = seconds if mean is None else mean + MEAN_WEIGHT * (seconds - mean)
        if answers:
            child.restart_clock(settings)

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


def _thread_pool(jobs: int) -> HashPool:
    """This thread's pool of ``jobs`` processes, kept between calls."""
    pool: HashPool | None = getattr(_local, "pool", None)
    if pool is None or pool.processes != jobs:
        if pool is not None:
            pool.close()
        pool = _local.pool = HashPool(jobs)
    return pool


def hash_many(refs: Iterable[str], settings: Settings, jobs: int = 1) -> Iterator[dict[str, Any]]:
    """Hash refs with ``jobs`` child processes (kept per thread between calls), records in input order."""
    yield from _thread_pool(jobs).imap(refs, settings)


def hash_many_timed(refs: Iterable[str], settings: Settings, jobs: int = 1) -> Iterator[Timed]:
    """hash_many with the seconds each file took: (record, seconds) in input order."""
    yield from _thread_pool(jobs).imap_timed(refs, settings)


@atexit.register
def _close_all() -> None:
    for pool in list(_POOLS):
        pool.close()
