"""When a PhashJob's timer call runs a full tick: about once a second, and at once when its last batch is back.

kopf calls the job's timer every TIMER_SECONDS. A full tick (hand out batches, fold counts, write the
status) runs only every TICK_SECONDS, as it did with a one-second timer, so a big job's status is
written no more often than before. In between, a job whose files are all handed out is looked at in
Redis (one round trip): once its last batch is back it ends in the next timer call, not up to a second
later. A job with batches still to hand out is looked at once after each full tick at most, since it
cannot be done before the rest is handed out; its other timer calls top the queue up (the engine's
`top_up`), so a fleet that empties the queue in a fraction of a second gets more without waiting for the
next full tick, and the queue can stay short.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from phashfleet.state.store import JobSnapshot

#: Seconds between two timer calls for one job: how soon a finished job is noticed.
TIMER_SECONDS = 0.2
#: Seconds between a job's full ticks (and so between its status writes while it runs).
TICK_SECONDS = 1.0
#: A timer call this close to TICK_SECONDS after the last full tick counts as due, so the cadence
#: stays at 1 s and does not slip to 1.2 s when a call lands just short of it.
SLACK = TIMER_SECONDS / 2


@dataclass
class TickCadence:
    """One job's timing: its last full tick, and what the last look in Redis saw."""

    ticked_at: float | None = None
    #: The last full tick ran early (the job looked finished): the next one waits for the cadence.
    early: bool = False
    looked_at: float | None = None
    listing_done: bool = False

    def due(self, now: float, *, retry: int, look: Callable[[], JobSnapshot]) -> bool:
        """True when this timer call should run a full tick (`look` reads the job's snapshot)."""
        if retry or self.ticked_at is None or now - self.ticked_at >= TICK_SECONDS - SLACK:
            self.early = False
            return True
        if self.early:
            return False
        looked_since_tick = self.looked_at is not None and self.looked_at >= self.ticked_at
        if looked_since_tick and not self.listing_done:
            return False
        snap = look()
        self.looked_at, self.listing_done = now, snap.listing_done
        self.early = snap.finished
        return self.early

    def ticked(self, at: float) -> None:
        """A full tick that started at `at` has run."""
        self.ticked_at = at
