"""The Dramatiq Redis broker and a redis-py client, configured from the environment.

PHASHFLEET_REDIS_URL names the server (redis://host:port/db) and PHASHFLEET_REDIS_PASSWORD carries
the password separately (from a Secret in the chart), so it never sits in a URL that gets logged.
"""

from __future__ import annotations

import os
from typing import TypeVar

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker

REDIS_URL_ENV = "PHASHFLEET_REDIS_URL"
REDIS_PASSWORD_ENV = "PHASHFLEET_REDIS_PASSWORD"
#: A SIGKILLed worker's unacked messages come back after this long without its heartbeat (ms); every
#: process on the broker (operator and workers) must use the same value.
HEARTBEAT_TIMEOUT_MS = int(os.environ.get("PHASHFLEET_HEARTBEAT_TIMEOUT_MS", "15000"))
#: Dramatiq runs its maintenance (which gives dead workers' messages back) on this many commands out of
#: a million: 1%, far above its default, so recovery after a SIGKILL does not wait for luck.
MAINTENANCE_CHANCE = 10_000


class RedisNotConfigured(RuntimeError):
    """PHASHFLEET_REDIS_URL is not set."""


class RedisAuthFailed(RuntimeError):
    """Redis refused the configured credentials: no retry can help, only fixing the setting."""


def redis_client(url: str | None = None, password: str | None = None) -> redis.Redis:
    """A redis-py client for the configured server (password from the environment unless given)."""
    url = url or os.environ.get(REDIS_URL_ENV)
    if not url:
        raise RedisNotConfigured(f"set {REDIS_URL_ENV} (and {REDIS_PASSWORD_ENV}) to reach Redis")
    password = password if password is not None else os.environ.get(REDIS_PASSWORD_ENV) or None
    return redis.Redis.from_url(
        url,
        password=password,
        socket_timeout=30,
        socket_connect_timeout=10,
        health_check_interval=30,
        retry_on_timeout=True,
    )


def check_credentials(client: redis.Redis) -> None:
    """Raise RedisAuthFailed, naming the server and the setting, when Redis refuses the client's password.

    An unreachable server passes: it may be starting, and Dramatiq's consumers reconnect on their own.
    """
    try:
        client.ping()
    except (redis.AuthenticationError, redis.AuthenticationWrongNumberOfArgsError) as exc:
        conn = client.connection_pool.connection_kwargs
        where = conn.get("path") or f"{conn.get('host')}:{conn.get('port')}"  # a unix socket has a path
        where = f"{where}/{conn.get('db', 0)}"
        raise RedisAuthFailed(f"Redis at {where} refused the credentials ({exc}); check {REDIS_PASSWORD_ENV}") from None
    except (redis.ConnectionError, redis.TimeoutError):
        return


def make_broker(client: redis.Redis | None = None, *, prometheus: bool = False) -> RedisBroker:
    """Build the Redis broker (Dramatiq's default middleware, plus its Prometheus one for workers)."""
    broker = RedisBroker(  # type: ignore[no-untyped-call]  # dramatiq's RedisBroker.__init__ is untyped
        client=client or redis_client(), heartbeat_timeout=HEARTBEAT_TIMEOUT_MS, maintenance_chance=MAINTENANCE_CHANCE
    )
    if prometheus:
        from dramatiq.middleware.prometheus import Prometheus

        broker.add_middleware(Prometheus())
    return broker


B = TypeVar("B", bound=dramatiq.Broker)


def install_broker(broker: B) -> B:
    """Make `broker` the global one that actors are declared on."""
    dramatiq.set_broker(broker)
    return broker
