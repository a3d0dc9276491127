"""cadence.TickCadence: a full tick once a second, or at once when a job's last batch is back."""

from __future__ import annotations

from phashfleet.state.store import JobSnapshot
from phashfleet_operator.cadence import TICK_SECONDS, TIMER_SECONDS, TickCadence


class Looks:
    """A job's snapshot as the cadence reads it, counting the reads."""

    def __init__(self, snap: JobSnapshot) -> None:
        self.snap = snap
        self.count = 0

    def __call__(self) -> JobSnapshot:
        self.count += 1
        return self.snap


def _calls(cadence: TickCadence, look: Looks, start: float, seconds: float) -> list[float]:
    """Timer calls every TIMER_SECONDS from `start` for `seconds`; the times a full tick ran."""
    ticks = []
    for step in range(round(seconds / TIMER_SECONDS)):
        now = start + step * TIMER_SECONDS
        if cadence.due(now, retry=0, look=look):
            cadence.ticked(now)
            ticks.append(round(now, 3))
    return ticks


def test_a_job_still_listing_ticks_once_a_second_and_is_looked_at_once_per_tick() -> None:
    cadence, look = TickCadence(), Looks(JobSnapshot(exists=True, total=5000, listed=640, inflight=10))
    assert _calls(cadence, look, 100.0, 3.0) == [100.0, 101.0, 102.0]
    assert look.count == 3  # one look after each full tick, none more: it cannot be done before the next


def test_a_job_whose_files_are_all_out_ticks_as_soon_as_its_last_batch_is_back() -> None:
    snap = JobSnapshot(exists=True, total=1, listed=1, listing_done=True, inflight=1)
    cadence, look = TickCadence(), Looks(snap)
    assert _calls(cadence, look, 0.0, 0.6) == [0.0]  # first tick at once; then looked at, not yet done
    assert look.count == 2
    look.snap = JobSnapshot(exists=True, total=1, listed=1, listing_done=True, ok=1)
    assert cadence.due(0.6, retry=0, look=look)  # back: the next timer call ends it, not a second later


def test_an_early_tick_happens_once_between_two_regular_ones() -> None:
    finished = JobSnapshot(exists=True, total=1, listed=1, listing_done=True, ok=1)
    cadence, look = TickCadence(), Looks(finished)
    ticks = _calls(cadence, look, 0.0, 2.0)
    # A job that looks finished but has not ended (its tick failed to end it): one early tick, then a
    # second of the regular cadence from it, so it writes status at most twice a second.
    assert ticks == [0.0, 0.2, 1.2, 1.4]


def test_a_retry_always_runs_a_full_tick() -> None:
    cadence, look = TickCadence(), Looks(JobSnapshot(exists=True, total=10, listed=5))
    cadence.ticked(10.0)
    assert cadence.due(10.2, retry=1, look=look) and look.count == 0


def test_the_cadence_of_full_ticks_is_the_old_one_second_timer() -> None:
    assert TICK_SECONDS == 1.0 and TICK_SECONDS / TIMER_SECONDS >= 4
