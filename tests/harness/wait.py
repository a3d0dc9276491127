"""Poll a condition until it holds or a deadline passes: the harness's only way to wait."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """A condition did not hold before its deadline."""


def wait_for(check: Callable[[], T], *, timeout: float = 30.0, interval: float = 0.1, what: str = "condition") -> T:
    """Call `check` until it returns a truthy value and return it; raise WaitTimeout at the deadline.

    Exceptions raised by `check` count as "not yet" and the last one is reported on timeout.
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = check()
            if value:
                return value
            last = value
        except Exception as exc:  # noqa: BLE001 - a failing probe is just "not ready yet"
            last = exc
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"timed out after {timeout:.0f}s waiting for {what}; last result: {last!r}")
        time.sleep(interval)
