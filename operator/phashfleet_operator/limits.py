"""A namespace's limit on running PhashJobs: phashfleet.io/max-running-jobs on the Namespace, else the chart's."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from phashfleet.job.status import queued_status
from phashfleet_operator.kube import REQUEST_TIMEOUT
from phashfleet_operator.reconcile import NamespaceJob, namespace_hold

log = logging.getLogger("phashfleet.operator")
ANNOTATION = "phashfleet.io/max-running-jobs"
#: Seconds a Namespace's annotation is reused: every held job's tick asks, the API needs hearing seldom.
ANNOTATION_TTL = 5.0
#: What reads a Namespace's annotations (None: it cannot be read).
ReadAnnotations = Callable[[str], dict[str, str] | None]


def parse_limit(value: str | None, default: int) -> int:
    """The limit an annotation value sets: a whole number, 0 for none; `default` when missing or not a number >= 0."""
    if value is None:
        return default
    try:
        limit = int(value.strip())
    except ValueError:
        return default
    return limit if limit >= 0 else default


def read_annotations(namespace: str) -> dict[str, str] | None:
    """The Namespace's annotations, or None when the operator may not read it (no RBAC) or it is gone."""
    try:
        ns = client.CoreV1Api().read_namespace(namespace, _request_timeout=REQUEST_TIMEOUT)
    except ApiException as exc:
        if exc.status in (403, 404):
            return None
        raise
    return dict((ns.metadata.annotations if ns.metadata else None) or {})


class NamespaceLimits:
    """Decides which PhashJobs wait for their namespace's limit, reading each Namespace at most every `ttl` s."""

    def __init__(self, default: int, read: ReadAnnotations = read_annotations, ttl: float = ANNOTATION_TTL) -> None:
        self.default = default
        self.read = read
        self.ttl = ttl
        self._known: dict[str, tuple[int, float]] = {}
        self._warned: set[str] = set()

    def limit(self, namespace: str) -> int:
        """Running PhashJobs the namespace allows (0: no limit)."""
        known = self._known.get(namespace)
        if known and time.monotonic() - known[1] < self.ttl:
            return known[0]
        try:
            annotations = self.read(namespace)
        except (ApiException, OSError, urllib3.exceptions.HTTPError) as exc:
            log.warning("cannot read namespace %s for %s (keeping the last limit): %s", namespace, ANNOTATION, exc)
            annotations = {} if known is None else {ANNOTATION: str(known[0])}
        if annotations is None:
            self._warn(namespace, f"cannot read namespace {namespace} (RBAC): {ANNOTATION} there is not seen")
            annotations = {}
        value = annotations.get(ANNOTATION)
        limit = parse_limit(value, self.default)
        if value is not None and str(limit) != value.strip():
            self._warn(namespace, f"{ANNOTATION}={value!r} on namespace {namespace} is not a whole number >= 0")
        self._known[namespace] = (limit, time.monotonic())
        return limit

    def _warn(self, namespace: str, message: str) -> None:
        if namespace not in self._warned:
            self._warned.add(namespace)
            log.warning("%s; using the default, %d (0: no limit)", message, self.default)

    def held(
        self, namespace: str, name: str, jobs: Iterable[NamespaceJob], previous: dict[str, Any]
    ) -> dict[str, Any] | None:
        """The Queued status for a job that must wait for its namespace's limit, or None when it may start."""
        limit = self.limit(namespace)
        hold = namespace_hold(name, jobs, limit)
        if hold is None:
            return None
        running = ", ".join(hold.running) or "none yet (the jobs ahead are starting)"
        message = (
            f"namespace {namespace} runs at most {limit} PhashJob{'s' if limit != 1 else ''} at once "
            f"({ANNOTATION} or the operator's default); running: {running}; this job is number {hold.place} "
            "in line and starts as they finish"
        )
        return queued_status("NamespaceLimit", message, previous)
