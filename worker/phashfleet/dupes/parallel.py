"""Split work over forked processes that share the parent's arrays (copy-on-write), one pipe back each.

Fork needs no shared-memory file system (/dev/shm) and no writable path: the children read the
parent's arrays in place and send their result (two int64 arrays) through a pipe. Where fork is
unavailable, or a child fails, the parent does that share itself, so the result never changes.
"""

from __future__ import annotations

import io
import logging
import os
import signal
import traceback
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

import numpy as np

log = logging.getLogger(__name__)

T = TypeVar("T")
Pairs = tuple[np.ndarray, np.ndarray]

#: Default processes: the CPUs this process may use, at most this many (each adds its table's
#: temporaries, about 10 bytes per hash, to the peak memory).
MAX_DEFAULT_PROCESSES = 2


def default_processes() -> int:
    """Processes to use by default: the CPUs this process may run on, capped at MAX_DEFAULT_PROCESSES."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(MAX_DEFAULT_PROCESSES, cpus))


def map_shares(task: Callable[[Sequence[T]], Pairs], items: Sequence[T], processes: int) -> Iterator[Pairs]:
    """Yield ``task(share)`` for ``processes`` interleaved shares of ``items``; the parent runs the first share."""
    shares = [items[k::processes] for k in range(max(1, processes))]
    shares = [share for share in shares if share]
    if len(shares) <= 1 or not hasattr(os, "fork"):
        yield task(items)
        return
    children: list[tuple[int, int, Sequence[T]]] = []
    try:
        for share in shares[1:]:
            children.append(_fork(task, share))
        yield task(shares[0])
        while children:
            pid, read_fd, share = children.pop(0)
            yield _collect(pid, read_fd, share, task)
    finally:
        for pid, read_fd, _ in children:  # the parent failed or was closed early: stop the others
            os.close(read_fd)
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)


def _fork(task: Callable[[Sequence[T]], Pairs], share: Sequence[T]) -> tuple[int, int, Sequence[T]]:
    """Start a child running ``task(share)``; return its pid and the pipe it answers on."""
    read_fd, write_fd = os.pipe()
    with warnings.catch_warnings():
        # Python 3.12+ warns when a threaded process forks (a lock held by another thread stays held in
        # the child). The child takes none: it runs numpy, writes to its pipe with os calls and _exits.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child, which never returns
        code = 1
        try:
            for signum in (signal.SIGINT, signal.SIGTERM):  # not the parent's handlers: just stop
                signal.signal(signum, signal.SIG_DFL)
            os.close(read_fd)
            with os.fdopen(write_fd, "wb") as out:
                a, b = task(share)
                out.write(np.int64(a.size).tobytes())
                out.write(np.ascontiguousarray(a, dtype=np.int64).tobytes())
                out.write(np.ascontiguousarray(b, dtype=np.int64).tobytes())
            code = 0
        except BaseException:  # noqa: BLE001 - anything the child hits is reported by its exit code
            os.write(2, traceback.format_exc().encode())  # not sys.stderr, whose lock a parent thread may hold
        finally:
            os._exit(code)
    os.close(write_fd)
    return pid, read_fd, share


def _collect(pid: int, read_fd: int, share: Sequence[T], task: Callable[[Sequence[T]], Pairs]) -> Pairs:
    """A child's result; if it failed (killed, out of memory), the parent computes the share itself."""
    result: Pairs | None = None
    with os.fdopen(read_fd, "rb") as source:
        head = _read(source, 8)
        if head is not None:
            size = int(np.frombuffer(head, dtype=np.int64)[0])
            a, b = _read(source, 8 * size), _read(source, 8 * size)
            if a is not None and b is not None:
                result = np.frombuffer(a, dtype=np.int64), np.frombuffer(b, dtype=np.int64)
    _, status = os.waitpid(pid, 0)
    if result is None or status != 0:
        log.warning("dupes: a child process failed (wait status %d); doing its share here", status)
        return task(share)
    return result


def _read(source: io.BufferedReader, size: int) -> bytearray | None:
    """Exactly ``size`` bytes from a pipe, None if it ends first."""
    data = bytearray(size)
    view = memoryview(data)
    done = 0
    while done < size:
        got = source.readinto(view[done:])
        if not got:
            return None
        done += got
    return data
