"""A hashing process of the pool: ``python -m phashfleet.hashing.child READ_FD WRITE_FD``.

Receives chunks, ([(index, ref), ...], settings), until it reads None or EOF; answers each file as
soon as it is done with a frame (index, record, seconds it took), so the parent always knows which
file a process is on, even after it is killed.
"""

from __future__ import annotations

import signal
import sys
import time
from multiprocessing.connection import Connection


def main(read_fd: int, write_fd: int) -> None:
    """Warm up, say "ready", then hash what the parent sends."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when this process stops
    inbox = Connection(read_fd, writable=False)
    import phashfleet.hashing.warm  # noqa: F401 - imports and exercises every hashing path
    from phashfleet.hashing.frames import write_frame
    from phashfleet.hashing.hash_file import hash_ref

    write_frame(write_fd, "ready")
    clock = time.perf_counter
    while True:
        try:
            chunk = inbox.recv()
        except (EOFError, OSError):
            return
        if chunk is None:
            return
        tasks, settings = chunk
        for index, ref in tasks:
            started = clock()
            record = hash_ref(ref, settings)
            write_frame(write_fd, (index, record, clock() - started))


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
