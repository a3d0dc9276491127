"""The operator's /healthz answers at once while Redis is unreachable, and turns healthy as soon as it is back."""

from __future__ import annotations

import time
import urllib.error
import urllib.request

from harness.wait import wait_for


def _health(proc) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{proc.health_port}/healthz", timeout=15) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_health_fails_fast_without_redis_and_recovers(control_plane, namespace, redis_server, redis_env, operator):
    op = operator(namespace, env=redis_env)
    redis_server.stop()
    try:
        # Past kopf's probe cache (10 s by default), the next request runs the Redis probe again.
        wait_for(lambda: _health(op) == 500, timeout=40, interval=1, what="/healthz to report Redis down")
        asked = time.monotonic()
        assert _health(op) == 500
        assert time.monotonic() - asked < 5, "/healthz waited for a retry instead of answering"
    finally:
        redis_server.start()
    wait_for(lambda: _health(op) == 200, timeout=40, interval=1, what="/healthz healthy again with Redis back")
