"""The Redis fixture is a real server that tests can restart with or without its data, kill and flush."""

from __future__ import annotations

import pytest
import redis


def test_password_is_required(redis_server, redis_env):
    anonymous = redis.Redis(host="127.0.0.1", port=redis_server.port)
    with pytest.raises(redis.AuthenticationError):
        anonymous.get("x")


def test_restart_with_aof_keeps_data(redis_server, redis_env):
    redis_server.client().set("kept", "yes")
    redis_server.restart(persist=True)
    assert redis_server.client().get("kept") == b"yes"


def test_restart_without_persistence_loses_data(redis_server, redis_env):
    redis_server.client().set("lost", "yes")
    redis_server.restart(persist=False)
    assert redis_server.client().get("lost") is None


def test_kill_then_start_recovers_aof(redis_server, redis_env):
    redis_server.client().set("fsynced", "1")
    redis_server.kill()
    with pytest.raises(redis.ConnectionError):
        redis_server.client().ping()
    redis_server.start()
    assert redis_server.client().get("fsynced") == b"1"


def test_flush_drops_everything(redis_server, redis_env):
    client = redis_server.client()
    client.mset({"a": 1, "phashfleet:job:x:meta": 2})
    redis_server.flush()
    assert client.exists("a", "phashfleet:job:x:meta") == 0
