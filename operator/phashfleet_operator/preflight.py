"""What will keep jobs from running, said once in the operator's log: at start-up, and when Redis comes and goes."""

from __future__ import annotations

import logging

import redis
import urllib3
from kubernetes.client.exceptions import ApiException

from phashfleet.files.access import ALLOWED_ROOTS_ENV
from phashfleet_operator.config import OperatorConfig
from phashfleet_operator.kube import WorkerScale

log = logging.getLogger("phashfleet.operator")


def redis_where(client: redis.Redis) -> str:
    """host:port/db (or the socket path) of a client's server: never its password."""
    conn = client.connection_pool.connection_kwargs
    where = conn.get("path") or f"{conn.get('host')}:{conn.get('port')}"  # a unix socket has a path
    return f"{where}/{conn.get('db', 0)}"


def redis_problem(client: redis.Redis) -> str | None:
    """Why Redis cannot be used right now, or None when it answers."""
    try:
        client.ping()
    except Exception as exc:  # noqa: BLE001 - any failure to reach Redis is "down", said with its reason
        return f"{type(exc).__name__}: {exc}"
    return None


def worker_problem(workers: WorkerScale) -> str | None:
    """Why the worker Deployment cannot be scaled or read, or None when it is there."""
    try:
        found = workers.current()
    except (ApiException, OSError, urllib3.exceptions.HTTPError) as exc:
        reason = f"{exc.status} {exc.reason}" if isinstance(exc, ApiException) else str(exc)
        return f"the worker Deployment {workers.namespace}/{workers.name} cannot be read ({reason})"
    if found is None:
        return (
            f"the worker Deployment {workers.namespace}/{workers.name} does not exist: jobs wait for workers "
            "(set PHASHFLEET_WORKER_DEPLOYMENT/PHASHFLEET_WORKER_NAMESPACE)"
        )
    return None


def warn_at_startup(config: OperatorConfig, workers: WorkerScale, client: redis.Redis) -> bool:
    """Log a warning for each thing that will keep jobs from running; return whether Redis answered."""
    if not config.allowed_roots:
        log.warning(
            "%s is empty: every job with a local (file://) source will fail with SourceOutsideRoots", ALLOWED_ROOTS_ENV
        )
    if problem := worker_problem(workers):
        log.warning("%s", problem)
    problem = redis_problem(client)
    if problem:
        log.warning("Redis at %s cannot be reached (%s): jobs wait until it can", redis_where(client), problem)
    return problem is None


class RedisWatch:
    """Tells the log when Redis stops answering and when it answers again: once each, not every second."""

    def __init__(self, client: redis.Redis, up: bool) -> None:
        self.client = client
        self.up = up

    def check(self) -> bool:
        """Ping Redis, log a change of state, and return whether it answered."""
        problem = redis_problem(self.client)
        if problem and self.up:
            log.warning("Redis at %s cannot be reached (%s): jobs wait until it can", redis_where(self.client), problem)
        elif not problem and not self.up:
            log.info("Redis at %s answers again", redis_where(self.client))
        self.up = problem is None
        return self.up
