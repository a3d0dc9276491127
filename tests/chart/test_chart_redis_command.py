"""The bundled Redis's command line, run as rendered with a real redis-server: password, AOF, noeviction."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from chart.render import render
from chart.tools import require_tool
from harness.ports import free_port
from harness.wait import wait_for

PASSWORD = 'p@ss w"rd $HOME'  # spaces, quotes and a dollar: the shell must pass it through untouched


def _redis_container(port: int) -> dict:
    sts = render({"redis": {"port": port}}).of("StatefulSet")[0]
    return sts["spec"]["template"]["spec"]["containers"][0]


def _start(script: str, env: dict) -> subprocess.Popen:
    return subprocess.Popen(["sh", "-c", script], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_rendered_redis_command(tmp_path: Path):
    """Redis starts from the rendered command, refuses clients without the password, keeps data across a restart."""
    require_tool("redis-server")
    cli = require_tool("redis-cli")
    port = free_port()
    c = _redis_container(port)
    assert c["command"][:2] == ["sh", "-c"]
    # The pod's /data is the PVC; here a temp folder. Loopback only on this machine.
    script = c["command"][2].replace("--dir /data", f"--dir {tmp_path}") + " --bind 127.0.0.1"
    env = {"PATH": os.environ["PATH"], "REDIS_PASSWORD": PASSWORD, "REDISCLI_AUTH": PASSWORD}
    probe = c["readinessProbe"]["exec"]["command"]

    proc = _start(script, env)
    try:
        wait_for(lambda: subprocess.run(probe, env=env, timeout=5).returncode == 0, timeout=20, what="readiness probe")
        assert subprocess.run(c["livenessProbe"]["exec"]["command"], env=env, timeout=5).returncode == 0

        def cli_run(*args: str, auth: bool = True) -> str:
            run_env = env if auth else {"PATH": env["PATH"]}
            return subprocess.run(
                [cli, "-p", str(port), *args], env=run_env, capture_output=True, text=True, timeout=5
            ).stdout.strip()

        assert "NOAUTH" in cli_run("ping", auth=False)
        assert cli_run("config", "get", "appendonly").split() == ["appendonly", "yes"]
        assert cli_run("config", "get", "maxmemory-policy").split() == ["maxmemory-policy", "noeviction"]
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().decode(errors="replace")
        assert "redis-server" in cmdline and PASSWORD not in cmdline, "the password shows in the process list"
        assert cli_run("set", "job:1", "kept") == "OK"
    finally:
        proc.send_signal(signal.SIGTERM)  # exec made redis-server PID 1 of the container: it gets SIGTERM
        proc.wait(timeout=20)
    assert proc.returncode == 0, "redis-server did not shut down cleanly on SIGTERM"

    proc = _start(script, env)
    try:
        wait_for(lambda: subprocess.run(probe, env=env, timeout=5).returncode == 0, timeout=20, what="restart")
        got = subprocess.run([cli, "-p", str(port), "get", "job:1"], env=env, capture_output=True, text=True, timeout=5)
        assert got.stdout.strip() == "kept", "data did not survive a restart (AOF)"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)


def test_probe_fails_with_a_wrong_password(tmp_path: Path):
    """The probe is a real check: with the wrong password it fails."""
    require_tool("redis-server")
    port = free_port()
    c = _redis_container(port)
    script = c["command"][2].replace("--dir /data", f"--dir {tmp_path}") + " --bind 127.0.0.1"
    env = {"PATH": os.environ["PATH"], "REDIS_PASSWORD": PASSWORD, "REDISCLI_AUTH": PASSWORD}
    proc = _start(script, env)
    try:
        wait_for(
            lambda: subprocess.run(c["readinessProbe"]["exec"]["command"], env=env, timeout=5).returncode == 0,
            timeout=20,
            what="readiness probe",
        )
        wrong = {**env, "REDISCLI_AUTH": "nope"}
        assert (
            subprocess.run(c["readinessProbe"]["exec"]["command"], env=wrong, timeout=5, capture_output=True).returncode
            != 0
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
