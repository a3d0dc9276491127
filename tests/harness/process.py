"""A managed child process with a log file: start, stop (SIGTERM then SIGKILL), kill, restart."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path

#: Every process the harness started, so the session can make sure none outlives it.
STARTED: list[ManagedProcess] = []


def kill_all_started() -> None:
    """SIGKILL the process group of every harness process still alive (end of the test session)."""
    for proc in STARTED:
        proc.kill()


class ProcessExited(RuntimeError):
    """A process the caller needs running has ended."""


class ManagedProcess:
    """One long-running server or worker process started by the harness."""

    def __init__(
        self, name: str, argv: list[str], log_path: Path, env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> None:
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.env = env
        self.cwd = cwd
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> None:
        """Start the process (no-op when it is already running), appending to its log."""
        if self.alive:
            return
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            log.write(f"--- start {self.starts + 1}: {' '.join(self.argv)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.argv, stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=self.cwd, start_new_session=True
            )
        self.starts += 1
        STARTED.append(self)

    @property
    def alive(self) -> bool:
        """True while the process runs."""
        return self.proc is not None and self.proc.poll() is None

    def check_alive(self) -> None:
        """Raise ProcessExited, with the end of its log, when the process is not running."""
        if not self.alive:
            code = self.proc.returncode if self.proc else None
            raise ProcessExited(f"{self.name} exited with code {code}:\n{self.log_tail()}")

    @property
    def pid(self) -> int | None:
        """The process id, or None before the first start."""
        return self.proc.pid if self.proc else None

    def signal(self, sig: int) -> None:
        """Send `sig` to the process (not its children)."""
        if self.alive:
            os.kill(self.proc.pid, sig)

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM, wait up to `timeout`, then SIGKILL; return the exit code."""
        if self.proc is None:
            return None
        if self.alive:
            self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout)
        code = self.proc.wait() if not self.alive else None
        self.kill()  # whatever is left of its session (forked children) goes too
        return code if code is not None else self.proc.wait()

    def kill(self) -> None:
        """SIGKILL the process and everything in its session (children too, even orphaned), and reap it."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def restart(self) -> None:
        """Stop gracefully, then start again."""
        self.stop()
        self.start()

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the process log, for failure messages."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""
