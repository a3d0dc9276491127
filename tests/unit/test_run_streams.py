"""`phashfleet run > status.json`: stdout is the status JSON and nothing else; the progress bar is on a terminal stderr."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from harness.operator_proc import phashfleet_argv
from harness.synthetic import photo_like

#: Seconds a local run of a few small photos may take (a cold interpreter and a process pool).
RUN_TIMEOUT = 120


@pytest.fixture
def manifest(tmp_path) -> Path:
    (tmp_path / "photos").mkdir()
    for i in range(4):
        photo_like(160, 120, seed=i).save(tmp_path / "photos" / f"p{i}.png")
    path = tmp_path / "job.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "phashfleet.io/v1alpha1",
                "kind": "PhashJob",
                "metadata": {"name": "streams"},
                "spec": {"source": {"uri": f"file://{tmp_path / 'photos'}"}},
            }
        )
    )
    return path


def _run(manifest: Path, *, stderr_tty: bool) -> tuple[int, bytes, bytes]:
    """Run `phashfleet run`, stdout to a pipe and stderr to a pty (or a pipe); return (code, stdout, stderr)."""
    argv = phashfleet_argv("run", str(manifest), "--jobs", "1")
    env = {**os.environ, "COLUMNS": "100", "TERM": "xterm"}
    if not stderr_tty:
        done = subprocess.run(argv, capture_output=True, timeout=RUN_TIMEOUT, env=env, check=False)
        return done.returncode, done.stdout, done.stderr
    main, side = os.openpty()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=side, env=env)
    os.close(side)
    err = b""
    while True:  # read the terminal until the child closes it (EIO on Linux once no process holds it)
        try:
            chunk = os.read(main, 65536)
        except OSError:
            break
        if not chunk:
            break
        err += chunk
    os.close(main)
    out = proc.stdout.read()
    proc.stdout.close()
    return proc.wait(timeout=RUN_TIMEOUT), out, err


@pytest.mark.parametrize("stderr_tty", [True, False], ids=["stderr-terminal", "stderr-pipe"])
def test_stdout_holds_exactly_the_status_json(manifest, stderr_tty):
    code, out, _ = _run(manifest, stderr_tty=stderr_tty)
    assert code == 0, out
    status = json.loads(out)
    assert status["phase"] == "Succeeded" and status["succeeded"] == 4
    # Nothing before or after the document but the one newline that ends a text file.
    assert out == (json.dumps(status, indent=2, ensure_ascii=False) + "\n").encode(), out[:80]


def test_the_progress_bar_goes_to_a_terminal_stderr_only(manifest):
    _, _, on_terminal = _run(manifest, stderr_tty=True)
    assert b"hashing" in on_terminal and b"files/s" in on_terminal, on_terminal[:200]
    _, _, on_pipe = _run(manifest, stderr_tty=False)
    assert b"hashing" not in on_pipe and b"\x1b[" not in on_pipe, on_pipe[:200]
