"""`phashfleet hash`: files and folders in, JSON lines out, exit 2 only for a wrong command line."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import imagehash
import pytest
from click.testing import CliRunner
from PIL import Image

from harness.synthetic import photo_like
from phashfleet.cli import main


@pytest.fixture
def tree(tmp_path) -> Path:
    """A folder with images (one in a sub-folder, one with a non-ASCII name), text and a broken file."""
    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    photo_like(200, 150, seed=1).save(root / "b.jpg", quality=90)
    photo_like(180, 120, seed=2).save(root / "sub" / "a été.png")
    (root / "notes.txt").write_text("hello\n")
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff" + b"\x00" * 50)
    return root


def run(*args: str):
    result = CliRunner().invoke(main, ["hash", *args])
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    return result, lines


def test_folder_gives_one_record_per_file_in_order(tree):
    result, records = run(str(tree), "--jobs", "2")
    assert result.exit_code == 0, result.output
    names = [os.path.relpath(r["path"], tree) for r in records]
    assert names == ["b.jpg", "broken.jpg", "notes.txt", os.path.join("sub", "a été.png")]
    status = {os.path.basename(r["path"]): (r["status"], r["reason"]) for r in records}
    assert status["b.jpg"] == ("ok", None)
    assert status["a été.png"] == ("ok", None)
    assert status["broken.jpg"][0] == "failed" and status["broken.jpg"][1].startswith("decode_error:")
    assert status["notes.txt"][0] == "skipped"


def test_options_reach_the_hash(tree):
    image = tree / "b.jpg"
    result, records = run(str(image), "--exact", "--algorithm", "dhash", "--hash-size", "16", "-j", "1")
    assert result.exit_code == 0, result.output
    assert records[0]["algorithm"] == "dhash" and records[0]["hash_size"] == 16
    assert records[0]["hash"] == str(imagehash.dhash(Image.open(image), 16))


@pytest.mark.parametrize(
    "args",
    [
        ["/no/such/folder"],
        ["{tree}", "--algorithm", "md5"],
        ["{tree}", "--hash-size", "64"],
        ["{tree}", "--algorithm", "whash", "--hash-size", "12"],
        ["{tree}", "--jobs", "0"],
        ["{tree}", "--timeout", "0"],
        [],
    ],
)
def test_usage_errors_exit_2_without_output(tree, args):
    result, records = run(*[a.format(tree=tree) for a in args])
    assert result.exit_code == 2, result.output
    assert records == []


def test_progress_bar_only_on_a_terminal(tree):
    command = [sys.executable, "-m", "phashfleet.cli", "hash", str(tree), "--jobs", "1"]
    piped = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert piped.returncode == 0 and piped.stderr == ""
    assert len(piped.stdout.splitlines()) == 4

    controller, terminal = pty.openpty()
    try:
        on_tty = subprocess.run(
            command,
            stdout=subprocess.PIPE,
            stderr=terminal,
            text=True,
            timeout=120,
            env={**os.environ, "COLUMNS": "100"},
        )
        os.close(terminal)
        terminal = -1
        shown = b""
        while True:
            try:
                chunk = os.read(controller, 4096)
            except OSError:
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(controller)
        if terminal != -1:
            os.close(terminal)
    assert on_tty.returncode == 0
    assert [json.loads(line)["path"] for line in on_tty.stdout.splitlines()] == [
        json.loads(line)["path"] for line in piped.stdout.splitlines()
    ]
    assert b"hashing" in shown
