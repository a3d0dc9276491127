"""values.schema.json refuses misspelt and wrongly typed values, naming them; validateValues refuses contradictions."""

from __future__ import annotations

import pytest

from chart.render import EXTERNAL_REDIS, merge, render, render_error

REFUSED = [
    # (values, text the error must contain)
    ({"operator": {"replica": 1}}, "'replica'"),
    ({"worker": {"replicas": "two"}}, "/worker/replicas"),
    ({"autoscaling": {"mode": "hpa"}}, "/autoscaling/mode"),
    ({"autoscaling": {"maxReplica": 3}}, "'maxReplica'"),
    ({"autoscaling": {"minReplicas": -1}}, "/autoscaling/minReplicas"),
    ({"redis": {"enable": False}}, "'enable'"),
    ({"redis": {"enabled": "no"}}, "/redis/enabled"),
    ({"redis": {"url": "http://redis:6379"}}, "/redis/url"),
    ({"redis": {"persistence": {"size": "lots"}}}, "/redis/persistence/size"),
    ({"metrics": {"serviceMonitor": {"enable": True}}}, "'enable'"),
    ({"metrics": {"serviceMonitor": {"interval": "30 seconds"}}}, "/metrics/serviceMonitor/interval"),
    ({"metrics": {"prometheusRule": {"failureRatio": 2}}}, "/metrics/prometheusRule/failureRatio"),
    ({"grafana": {"dashboard": {"enabled": True}}}, "'dashboard'"),
    ({"networkPolicy": {"enabled": "yes"}}, "/networkPolicy/enabled"),
    ({"source": {"allowedRoots": ["data/photos"]}}, "/source/allowedRoots/0"),
    ({"source": {"allowedRoot": ["/data"]}}, "'allowedRoot'"),
    ({"source": {"volumes": [{"name": "a", "mountPath": "/a", "existingClaim": "c", "readonly": True}]}}, "'readonly'"),
    (
        {"source": {"volumes": [{"name": "Bad_Name", "mountPath": "/a", "existingClaim": "c"}]}},
        "/source/volumes/0/name",
    ),
    ({"operator": {"replicas": 2}}, "/operator/replicas"),
    ({"operator": {"resources": {"limits": {"cpu": "a lot"}}}}, "/operator/resources/limits/cpu"),
    ({"operator": {"resources": {"limit": {"cpu": "1"}}}}, "'limit'"),
    ({"worker": {"extraEnv": [{"name": "A", "valu": "b"}]}}, "'valu'"),
    ({"worker": {"image": {"pullPolicy": "Sometimes"}}}, "/worker/image/pullPolicy"),
    ({"worker": {"tolerations": [{"key": "k", "effect": "Sometimes"}]}}, "/worker/tolerations/0/effect"),
    ({"containerSecurityContext": {"readOnlyRootFileSystem": True}}, "'readOnlyRootFileSystem'"),
    ({"podSecurityContext": {"runAsUser": "root"}}, "/podSecurityContext/runAsUser"),
    ({"unknownTopLevel": 1}, "'unknownTopLevel'"),
]


@pytest.mark.parametrize("values,needle", REFUSED, ids=[n.strip("'/") for _, n in REFUSED])
def test_schema_refuses_and_names_the_value(values, needle):
    """helm refuses the values and its message names the offending value."""
    assert needle in render_error(values)


CONTRADICTIONS = [
    ({"redis": {"enabled": False}}, ["redis.url is required", "redis.existingSecret is required"]),
    ({"redis": {"enabled": False, "url": "redis://r:6379/0"}}, ["redis.existingSecret is required"]),
    ({"redis": {"url": "redis://r:6379/0"}}, ["redis.url is only for an external Redis"]),
    (merge(EXTERNAL_REDIS, {"redis": {"url": "redis://:hunter2@r:6379/0"}}), ["must not hold credentials"]),
    ({"autoscaling": {"minReplicas": 5, "maxReplicas": 2}}, ["autoscaling.minReplicas (5) is larger"]),
    ({"metrics": {"serviceMonitor": {"enabled": True}, "podMonitor": {"enabled": True}}}, ["choose one"]),
    ({"operator": {"clusterWide": True, "watchNamespace": "media"}}, ["operator.watchNamespace is set"]),
    ({"source": {"volumes": [{"name": "a", "mountPath": "/a"}]}}, ["source.volumes[name=a] needs exactly one"]),
    (
        {"output": {"volumes": [{"name": "o", "mountPath": "/o", "existingClaim": "c", "hostPath": {"path": "/x"}}]}},
        ["output.volumes[name=o] needs exactly one"],
    ),
]


@pytest.mark.parametrize("values,needles", CONTRADICTIONS, ids=[n[0][:30] for _, n in CONTRADICTIONS])
def test_validate_values_names_value_and_fix(values, needles):
    """validateValues stops the render with a message naming the value."""
    err = render_error(values)
    for needle in needles:
        assert needle in err


def test_keda_mode_needs_the_keda_api():
    """autoscaling.mode=keda without KEDA installed fails instead of leaving the fleet unscaled."""
    err = render_error({"autoscaling": {"mode": "keda"}}, apis=())
    assert "autoscaling.mode=keda needs KEDA installed" in err


def test_monitoring_objects_skipped_without_the_api():
    """ServiceMonitor/PrometheusRule are gated on monitoring.coreos.com/v1 being served."""
    values = {"metrics": {"serviceMonitor": {"enabled": True}, "prometheusRule": {"enabled": True}}}
    assert not {"ServiceMonitor", "PrometheusRule"} & set(render(values, apis=()).kinds())
    assert {"ServiceMonitor", "PrometheusRule"} <= set(render(values).kinds())
