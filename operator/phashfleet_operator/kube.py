"""The few Kubernetes API calls the operator makes itself (kopf does the rest): worker scale, peers, status."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from typing import Any, cast

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

log = logging.getLogger("phashfleet.operator")
#: Seconds a read of the fleet's size is reused: every job's tick asks, the API needs hearing once.
FLEET_SIZE_TTL = 2.0
#: (connect, read) seconds for the operator's own API calls: a hung apiserver must not hang a handler.
REQUEST_TIMEOUT = (5, 15)


def load_config(kubeconfig: str | None = None) -> None:
    """Use the in-cluster service account when there is one, else the kubeconfig."""
    if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
        config.load_incluster_config()  # type: ignore[no-untyped-call]  # the kubernetes client leaves it untyped
    else:
        config.load_kube_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]  # the kubernetes client leaves it untyped


class WorkerScale:
    """Reads and sets the worker Deployment's replicas through its scale subresource."""

    def __init__(self, name: str, namespace: str) -> None:
        self.name = name
        self.namespace = namespace
        self.apps = client.AppsV1Api()
        self._size, self._size_read_at = 1, float("-inf")
        self._ready: int | None = None
        self._ready_read_at = float("-inf")

    def current(self) -> tuple[int, int] | None:
        """(spec replicas, ready replicas), or None when the Deployment does not exist.

        Every read also refreshes `fleet_size`, so the autoscaler's reads serve the dispatcher too.
        """
        try:
            scale = self.apps.read_namespaced_deployment_scale(
                self.name, self.namespace, _request_timeout=REQUEST_TIMEOUT
            )
        except ApiException as exc:
            if exc.status == 404:
                self._size, self._size_read_at = 1, time.monotonic()
                return None
            raise
        spec = (scale.spec.replicas if scale.spec else None) or 0
        ready = (scale.status.replicas if scale.status else None) or 0
        self._size, self._size_read_at = max(1, spec), time.monotonic()
        return spec, ready

    def fleet_size(self) -> int:
        """Workers the dispatcher plans for: spec replicas (at least 1), read at most every FLEET_SIZE_TTL s."""
        if time.monotonic() - self._size_read_at >= FLEET_SIZE_TTL:
            try:
                self.current()
            except (ApiException, OSError, urllib3.exceptions.HTTPError) as exc:
                log.warning("cannot read the worker Deployment's replicas (keeping %d): %s", self._size, exc)
                self._size_read_at = time.monotonic()
        return self._size

    def ready(self) -> int | None:
        """Workers running and ready (readyReplicas; 0 when the Deployment does not exist), read at most every
        FLEET_SIZE_TTL s; None when it cannot be read."""
        if time.monotonic() - self._ready_read_at >= FLEET_SIZE_TTL:
            self._ready_read_at = time.monotonic()
            try:
                dep = self.apps.read_namespaced_deployment(self.name, self.namespace, _request_timeout=REQUEST_TIMEOUT)
                self._ready = (dep.status.ready_replicas or 0) if dep.status else 0
            except ApiException as exc:
                self._ready = 0 if exc.status == 404 else None
            except (OSError, urllib3.exceptions.HTTPError):
                self._ready = None
        return self._ready

    def set(self, replicas: int) -> None:
        """Patch spec.replicas."""
        self.apps.patch_namespaced_deployment_scale(
            self.name, self.namespace, {"spec": {"replicas": replicas}}, _request_timeout=REQUEST_TIMEOUT
        )


def read_peers(peering: str, namespace: str | None) -> dict[str, Any]:
    """The status of kopf's peering object (identity -> priority, lifetime, lastseen): the KopfPeering in
    `namespace`, or the ClusterKopfPeering for a cluster-wide operator; empty when it is missing."""
    api = client.CustomObjectsApi()
    try:
        if namespace is None:
            body = api.get_cluster_custom_object(
                "kopf.dev", "v1", "clusterkopfpeerings", peering, _request_timeout=REQUEST_TIMEOUT
            )
        else:
            body = api.get_namespaced_custom_object(
                "kopf.dev", "v1", namespace, "kopfpeerings", peering, _request_timeout=REQUEST_TIMEOUT
            )
    except ApiException as exc:
        if exc.status == 404:
            return {}
        raise
    return dict(cast(dict[str, Any], body).get("status") or {})


def patch_status(group: str, version: str, plural: str, namespace: str, name: str, changes: dict[str, Any]) -> bool:
    """Merge `changes` into an object's status subresource; False if the object is gone.

    The operator's timer writes status with this rather than kopf's `patch`: when kopf's own patch
    fails (the apiserver restarting) the timer dies for good (nolar/kopf#642), while an error raised
    here is a handler error that kopf retries after the timer's backoff.
    """
    try:
        client.CustomObjectsApi().patch_namespaced_custom_object_status(
            group,
            version,
            namespace,
            plural,
            name,
            {"status": changes},
            _content_type="application/merge-patch+json",
            _request_timeout=REQUEST_TIMEOUT,
        )
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


def post_event(body: Mapping[str, Any], kind: str, reason: str, message: str) -> None:
    """Create a core/v1 Event about a PhashJob (Normal or Warning)."""
    import datetime as dt
    import secrets

    meta = body["metadata"]
    now = dt.datetime.now(dt.UTC)
    event = client.CoreV1Event(
        metadata=client.V1ObjectMeta(name=f"{meta['name']}.{secrets.token_hex(6)}", namespace=meta["namespace"]),
        involved_object=client.V1ObjectReference(
            api_version=body["apiVersion"],
            kind=body["kind"],
            name=meta["name"],
            namespace=meta["namespace"],
            uid=meta["uid"],
        ),
        reason=reason,
        message=message[:1024],
        type=kind,
        first_timestamp=now,
        last_timestamp=now,
        count=1,
        source=client.V1EventSource(component="phash-fleet-operator"),
        reporting_component="phash-fleet-operator",
    )
    client.CoreV1Api().create_namespaced_event(meta["namespace"], event)


def list_objects(group: str, version: str, plural: str, namespace: str, selector: str) -> list[dict[str, Any]]:
    """The objects of a namespace that match a label selector."""
    found = client.CustomObjectsApi().list_namespaced_custom_object(
        group, version, namespace, plural, label_selector=selector, _request_timeout=REQUEST_TIMEOUT
    )
    return list(cast(dict[str, Any], found).get("items") or [])


def create_object(group: str, version: str, plural: str, body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Create a namespaced object: (the object, True), or (the one of that name that exists already, False)."""
    api = client.CustomObjectsApi()
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    try:
        made = api.create_namespaced_custom_object(
            group, version, namespace, plural, body, _request_timeout=REQUEST_TIMEOUT
        )
    except ApiException as exc:
        if exc.status != 409:
            raise
        found = api.get_namespaced_custom_object(
            group, version, namespace, plural, name, _request_timeout=REQUEST_TIMEOUT
        )
        return cast(dict[str, Any], found), False
    return cast(dict[str, Any], made), True


def delete_object(group: str, version: str, plural: str, namespace: str, name: str) -> None:
    """Delete a namespaced object, its dependents in the background; one already gone is fine."""
    try:
        client.CustomObjectsApi().delete_namespaced_custom_object(
            group,
            version,
            namespace,
            plural,
            name,
            propagation_policy="Background",
            _request_timeout=REQUEST_TIMEOUT,
        )
    except ApiException as exc:
        if exc.status != 404:
            raise
