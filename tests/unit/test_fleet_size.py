"""How the operator reads the fleet's size for dispatch: cached for a while, last value kept on errors."""

from __future__ import annotations

from types import SimpleNamespace

import urllib3
from kubernetes.client.rest import ApiException

from phashfleet_operator import kube


def _scale(monkeypatch, answers):
    """A WorkerScale whose API reads return (spec, ready) or raise `answers` in turn, on a clock the test moves."""
    clock = {"now": 1000.0}
    monkeypatch.setattr(kube.time, "monotonic", lambda: clock["now"])
    reads = iter(answers)

    def read_namespaced_deployment_scale(name, namespace, **_):
        answer = next(reads)
        if isinstance(answer, Exception):
            raise answer
        spec, ready = answer
        return SimpleNamespace(spec=SimpleNamespace(replicas=spec), status=SimpleNamespace(replicas=ready))

    monkeypatch.setattr(
        kube.client,
        "AppsV1Api",
        lambda: SimpleNamespace(read_namespaced_deployment_scale=read_namespaced_deployment_scale),
    )
    return kube.WorkerScale("workers", "media"), clock


def test_fleet_size_is_spec_replicas_read_at_most_every_ttl(monkeypatch):
    scale, clock = _scale(monkeypatch, [(5, 2), (8, 8)])
    assert scale.fleet_size() == 5, "spec replicas (what is wanted), not the ready ones"
    clock["now"] += kube.FLEET_SIZE_TTL / 2
    assert scale.fleet_size() == 5, "within the TTL the last read is reused"
    clock["now"] += kube.FLEET_SIZE_TTL
    assert scale.fleet_size() == 8


def test_the_autoscalers_read_serves_the_dispatcher(monkeypatch):
    scale, clock = _scale(monkeypatch, [(3, 3), (9, 9)])
    clock["now"] += 10 * kube.FLEET_SIZE_TTL
    assert scale.current() == (3, 3)  # the autoscaler's read, once a second
    assert scale.fleet_size() == 3, "no second API read within the TTL of the autoscaler's"


def test_fleet_size_is_at_least_one_and_survives_api_errors(monkeypatch):
    scale, clock = _scale(
        monkeypatch,
        [
            (0, 0),
            (6, 6),
            ApiException(status=500),
            urllib3.exceptions.MaxRetryError(None, "/", "refused"),
            ApiException(status=404),
        ],
    )
    assert scale.fleet_size() == 1, "a fleet scaled to zero still gets work planned for one worker"
    for expected in (6, 6, 6, 1):  # two failed reads keep the last size; a missing Deployment means 1
        clock["now"] += kube.FLEET_SIZE_TTL
        assert scale.fleet_size() == expected
