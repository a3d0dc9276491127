"""How the operator reads the fleet's size for dispatch: cached for a while, last value kept on errors."""

from __future__ import annotations

import urllib3
from kubernetes.client.rest import ApiException

from phashfleet_operator import kube


def _scale(monkeypatch, answers):
    """A WorkerScale whose reads return (or raise) `answers` in turn, on a clock the test moves."""
    clock = {"now": 1000.0}
    monkeypatch.setattr(kube.time, "monotonic", lambda: clock["now"])
    scale = kube.WorkerScale.__new__(kube.WorkerScale)  # no API client: reads are scripted below
    scale._size, scale._size_read_at = 1, float("-inf")
    reads = iter(answers)

    def current():
        answer = next(reads)
        if isinstance(answer, Exception):
            raise answer
        return answer

    scale.current = current
    return scale, clock


def test_fleet_size_is_spec_replicas_read_at_most_every_ttl(monkeypatch):
    scale, clock = _scale(monkeypatch, [(5, 2), (8, 8)])
    assert scale.fleet_size() == 5, "spec replicas (what is wanted), not the ready ones"
    clock["now"] += kube.FLEET_SIZE_TTL / 2
    assert scale.fleet_size() == 5, "within the TTL the last read is reused"
    clock["now"] += kube.FLEET_SIZE_TTL
    assert scale.fleet_size() == 8


def test_fleet_size_is_at_least_one_and_survives_api_errors(monkeypatch):
    scale, clock = _scale(monkeypatch, [(0, 0), (6, 6), ApiException(status=500),
                                        urllib3.exceptions.MaxRetryError(None, "/", "refused"), None])
    assert scale.fleet_size() == 1, "a fleet scaled to zero still gets work planned for one worker"
    for expected in (6, 6, 6, 1):  # two failed reads keep the last size; a missing Deployment means 1
        clock["now"] += kube.FLEET_SIZE_TTL
        assert scale.fleet_size() == expected
