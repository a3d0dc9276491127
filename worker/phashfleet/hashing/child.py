"""A hashing process of the pool: ``python -m phashfleet.hashing.child READ_FD WRITE_FD``.

Receives (index, ref, settings) tuples, answers (index, record), until it reads None or EOF.
"""

from __future__ import annotations

import signal
import sys
from multiprocessing.connection import Connection


def main(read_fd: int, write_fd: int) -> None:
    """Warm up, say "ready", then hash what the parent sends."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when this process stops
    inbox, outbox = Connection(read_fd, writable=False), Connection(write_fd, readable=False)
    import phashfleet.hashing.warm  # noqa: F401 - imports and exercises every hashing path
    from phashfleet.hashing.hash_file import hash_ref

    outbox.send("ready")
    while True:
        try:
            task = inbox.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        index, ref, settings = task
        outbox.send((index, hash_ref(ref, settings)))


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
