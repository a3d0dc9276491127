"""A worker that Redis refuses (wrong password) exits non-zero at once, saying why, instead of retrying forever."""

from __future__ import annotations

import os
import signal
import subprocess
import time

from harness.operator_proc import phashfleet_argv

#: Seconds the worker has to give up: one connection attempt to a loopback Redis, plus Python's start-up.
DEADLINE = 30


def test_a_wrong_redis_password_exits_non_zero_with_the_reason(redis_env):
    env = {**os.environ, **redis_env, "PHASHFLEET_REDIS_PASSWORD": "not-" + redis_env["PHASHFLEET_REDIS_PASSWORD"]}
    proc = subprocess.Popen(
        phashfleet_argv("worker", "--metrics-port", "0"),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    started = time.monotonic()
    try:
        out, err = proc.communicate(timeout=DEADLINE)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(
            f"the worker was still running after {DEADLINE}s; its stderr ends:\n{err[-2000:]}"
        ) from None
    print(f"\nexited {proc.returncode} after {time.monotonic() - started:.1f}s: {err.strip()}")
    assert proc.returncode != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "refused the credentials" in lines[0] and "PHASHFLEET_REDIS_PASSWORD" in lines[0], err
    assert redis_env["PHASHFLEET_REDIS_PASSWORD"] not in err + out
