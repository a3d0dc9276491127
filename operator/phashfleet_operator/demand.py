"""How many batches the shared queue should hold: what the fleet takes from it until the next refills.

The operator refills the queue at every timer call of a job (cadence.py). A fixed room per worker pod
caps a job at that many batches a refill however many processes each pod runs and however fast they
hash: one pod of two processes on tiny files emptied a queue of four 1,000-file batches and then waited
for the next tick (3,550 files/s where the processes could do twice that). So the queue's room also
follows the measured intake: the batches that left the queue between two refills, per second. While the
queue runs dry at each refill the measure is only a floor of the intake, so the room doubles until the
fleet, not the queue, is the limit; when the fleet shrinks the measure falls with it. The horizon is
short on purpose: the queue is first in, first out, so what it holds runs before a job of higher
priority, or a namespace's fair share, can act.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field

from phashfleet_operator.cadence import TICK_SECONDS, TIMER_SECONDS

#: Seconds of the fleet's measured intake the queue holds after a refill: two timer calls, so one late
#: call (a busy operator) still finds work queued.
HORIZON_SECONDS = 2 * TIMER_SECONDS
#: The intake is measured over at least this long, so many jobs refilling within one second do not each
#: measure a few milliseconds' worth.
MEASURE_SECONDS = TICK_SECONDS * 0.9
#: Most batches the intake alone may ask the queue to hold (a bound on Redis keys, not a tuning knob).
MAX_ROOM = 2000


@dataclass
class QueueDemand:
    """The queue's intake in batches per second, measured from its length before and after each refill."""

    rate: float = 0.0
    _left: int | None = None  # what the queue held after the last refill
    _taken: int = 0  # batches taken from it since the measure began
    _since: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def before_refill(self, now: float, queued: int) -> None:
        """Note the queue's length just before a refill: what left it since the last one was taken."""
        with self._lock:
            if self._left is not None:
                self._taken += max(0, self._left - queued)
            if self._since is None:
                self._since = now
            elif now - self._since >= MEASURE_SECONDS:
                self.rate = self._taken / (now - self._since)
                self._taken, self._since = 0, now
            self._left = queued

    def after_refill(self, sent: int) -> None:
        """Note the messages a refill added to the queue."""
        with self._lock:
            if self._left is not None:
                self._left += sent

    def room(self) -> int:
        """Batches the queue should hold for the measured intake (0 until something has been measured)."""
        return min(MAX_ROOM, math.ceil(round(self.rate * HORIZON_SECONDS, 3)))  # 8.0000001 is 8, not 9
