"""A real redis-server on a free loopback port, always with a password, that tests can break on purpose."""

from __future__ import annotations

import secrets
import shutil
from pathlib import Path

import redis

from harness import tools
from harness.ports import free_port
from harness.process import ManagedProcess
from harness.wait import wait_for


class RedisServer:
    """redis-server with AOF persistence by default; stop/restart (with or without data), kill, flush."""

    def __init__(self, workdir: Path, *, password: str | None = None, appendonly: bool = True) -> None:
        self.workdir = workdir
        self.datadir = workdir / "data"
        self.port = free_port()
        self.password = password or secrets.token_urlsafe(18)
        self.appendonly = appendonly
        self.proc: ManagedProcess | None = None

    @property
    def url(self) -> str:
        """redis:// URL without the password (the password travels separately, as in the chart)."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def url_with_password(self) -> str:
        """redis:// URL with the password in it, for clients that take one URL."""
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        """A redis-py client for this server."""
        return redis.Redis(host="127.0.0.1", port=self.port, password=self.password, socket_timeout=5)

    def _argv(self) -> list[str]:
        args = [
            str(tools.find("redis-server")),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--protected-mode",
            "yes",
            "--requirepass",
            self.password,
            "--dir",
            str(self.datadir),
            "--save",
            "",
            "--daemonize",
            "no",
            "--loglevel",
            "warning",
        ]
        if self.appendonly:
            args += ["--appendonly", "yes", "--appendfsync", "always"]
        else:
            args += ["--appendonly", "no"]
        return args

    def start(self) -> RedisServer:
        """Start the server and wait until it answers PING."""
        self.datadir.mkdir(parents=True, exist_ok=True)
        if self.proc is None:
            self.proc = ManagedProcess("redis-server", self._argv(), self.workdir / "redis.log")
        else:
            self.proc.argv = self._argv()
        self.proc.start()
        wait_for(self._pings, timeout=30, interval=0.05, what="redis-server PING")
        return self

    def _pings(self) -> bool:
        if not self.proc.alive:
            raise RuntimeError("redis-server exited:\n" + self.proc.log_tail())
        return self.client().ping()

    def stop(self) -> None:
        """Stop the server gracefully (SIGTERM: redis flushes its AOF and exits)."""
        if self.proc:
            self.proc.stop()

    def kill(self) -> None:
        """SIGKILL the server: no chance to write anything more."""
        if self.proc:
            self.proc.kill()

    def restart(self, *, persist: bool = True) -> None:
        """Restart; with `persist=False` every byte of data is lost, as a pod without a volume would."""
        self.stop()
        if not persist:
            shutil.rmtree(self.datadir, ignore_errors=True)
        self.start()

    def flush(self) -> None:
        """FLUSHALL: drop every key while the server keeps running."""
        self.client().flushall()
