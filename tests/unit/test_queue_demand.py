"""The queue's room follows the fleet's measured intake: it doubles while each refill finds the queue dry,
holds two timer calls' worth when the fleet is the limit, and falls when the fleet shrinks."""

from __future__ import annotations

import math

from phashfleet_operator.cadence import TIMER_SECONDS
from phashfleet_operator.demand import HORIZON_SECONDS, MAX_ROOM, MEASURE_SECONDS, QueueDemand

BASE = 4  # the fixed room of one pod (queue_per_worker)


def _run(demand: QueueDemand, start: float, seconds: float, fleet_per_second: float, queued: int) -> tuple[int, list]:
    """Refill at every timer call for `seconds` while the fleet takes up to its pace; the queue left, and
    the room after each measure."""
    rooms, t = [], start
    while t < start + seconds - 1e-9:
        before = demand.rate
        demand.before_refill(t, queued)
        if demand.rate != before or not rooms:
            rooms.append(demand.room())
        sent = max(0, max(BASE, demand.room()) - queued)
        demand.after_refill(sent)
        queued = max(0, queued + sent - round(fleet_per_second * TIMER_SECONDS))
        t += TIMER_SECONDS
    return queued, rooms


def test_nothing_is_asked_before_anything_was_measured():
    demand = QueueDemand()
    assert demand.room() == 0
    demand.before_refill(0.0, 0)
    assert demand.room() == 0


def test_a_fleet_that_drains_the_queue_at_every_refill_doubles_its_room_until_it_is_the_limit():
    demand, fleet = QueueDemand(), 500.0  # batches a second the fleet could take
    _, rooms = _run(demand, 0.0, 12.0, fleet, 0)
    growing = [r for r in rooms if r][:4]
    assert growing[0] == 2 * BASE and all(b == 2 * a for a, b in zip(growing, growing[1:], strict=False)), rooms
    assert demand.room() == math.ceil(fleet * HORIZON_SECONDS)  # then what the fleet takes, two calls ahead


def test_a_fleet_that_shrinks_lowers_the_room():
    demand = QueueDemand()
    queued, _ = _run(demand, 0.0, 10.0, 200.0, 0)
    high = demand.room()
    _run(demand, 10.0, 10.0, 20.0, queued)
    assert high == math.ceil(200 * HORIZON_SECONDS) and demand.room() <= math.ceil(20 * HORIZON_SECONDS) + 1


def test_many_refills_within_the_measure_count_as_one_measure():
    demand = QueueDemand()
    demand.before_refill(0.0, 0)
    demand.after_refill(30)
    for i in range(1, 10):  # nine jobs refill within the same second; the queue drains meanwhile
        demand.before_refill(i * 0.05, 30 - 3 * i)
        demand.after_refill(0)
    assert demand.room() == 0  # no measure yet: under MEASURE_SECONDS has passed
    demand.before_refill(1.0, 0)
    assert MEASURE_SECONDS <= 1.0 and demand.rate == 30.0 and demand.room() == math.ceil(30 * HORIZON_SECONDS)


def test_the_room_is_bounded():
    demand = QueueDemand()
    demand.before_refill(0.0, 0)
    demand.after_refill(100 * MAX_ROOM)
    demand.before_refill(1.0, 0)
    assert demand.room() == MAX_ROOM
