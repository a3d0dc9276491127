"""Keeping a hold (a lease in the job store) alive from a thread while long data-plane work runs."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def kept(renew: Callable[[], object], every: float) -> Iterator[None]:
    """Call `renew` every `every` seconds in a daemon thread while the block runs."""
    stop = threading.Event()

    def keep() -> None:
        while not stop.wait(every):
            renew()

    keeper = threading.Thread(target=keep, daemon=True)
    keeper.start()
    try:
        yield
    finally:
        stop.set()
        keeper.join()
