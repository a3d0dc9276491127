"""`phashfleet dupes`: groups printed from a results file or stdin, records written back, bad input refused."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from phashfleet.cli import main
from phashfleet.results import dumps, make_record

RECORDS = [
    make_record("a.jpg", algorithm="phash", hash_size=8, status="ok", hash="ffff000000000000"),
    make_record("b.jpg", algorithm="phash", hash_size=8, status="ok", hash="ffff000000000001"),
    make_record("bad.jpg", algorithm="phash", hash_size=8, status="failed", reason="decode: truncated"),
    make_record("c.jpg", algorithm="phash", hash_size=8, status="ok", hash="0f0f0f0f0f0f0f0f"),
    make_record(
        "notes.txt", algorithm="phash", hash_size=8, status="skipped", hash="ffff000000000000", reason="not-image: text"
    ),
    make_record("d.jpg", algorithm="phash", hash_size=8, status="ok", hash="ffff000000000007"),
    make_record("e.jpg", algorithm="phash", hash_size=8, status="ok", hash="0f0f0f0f0f0f0f0f"),
]


@pytest.fixture
def results(tmp_path: Path) -> Path:
    """A results file with two near-duplicate groups, a failed and a skipped record, and a blank line."""
    path = tmp_path / "results.jsonl"
    lines = [dumps(r) for r in RECORDS]
    lines.insert(3, "")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def run(*args: str, stdin: str | None = None):
    """Invoke the CLI in-process; stdout and stderr stay apart."""
    return CliRunner().invoke(main, ["dupes", *args], input=stdin)


def test_prints_one_line_per_group(results: Path) -> None:
    outcome = run(str(results), "--max-distance", "3")
    assert outcome.exit_code == 0, outcome.output
    assert [json.loads(line) for line in outcome.stdout.splitlines()] == [
        {"group": 0, "size": 3, "max_distance": 3, "paths": ["a.jpg", "b.jpg", "d.jpg"]},
        {"group": 1, "size": 2, "max_distance": 0, "paths": ["c.jpg", "e.jpg"]},
    ]
    assert "groups: 2, files in them: 5" in outcome.stderr


def test_distance_bounds_the_groups(results: Path) -> None:
    outcome = run(str(results), "-d", "1")
    groups = [json.loads(line) for line in outcome.stdout.splitlines()]
    assert [g["paths"] for g in groups] == [["a.jpg", "b.jpg"], ["c.jpg", "e.jpg"]]


def test_reads_stdin_and_writes_groups_back(results: Path, tmp_path: Path) -> None:
    out = tmp_path / "grouped.jsonl"
    outcome = run("-", "--max-distance", "3", "--write-groups", str(out), stdin=results.read_text())
    assert outcome.exit_code == 0, outcome.output
    assert len(outcome.stdout.splitlines()) == 2
    written = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["path"], r["group"]) for r in written] == [
        ("a.jpg", 0),
        ("b.jpg", 0),
        ("bad.jpg", None),
        ("c.jpg", 1),
        ("notes.txt", None),
        ("d.jpg", 0),
        ("e.jpg", 1),
    ]
    assert [{k: v for k, v in r.items() if k != "group"} for r in written] == RECORDS
    assert not list(tmp_path.glob(".*.tmp")), "temporary file left behind"


def test_write_groups_can_replace_the_input(results: Path) -> None:
    outcome = run(str(results), "--write-groups", str(results))
    assert outcome.exit_code == 0, outcome.output
    assert [json.loads(line)["group"] for line in results.read_text().splitlines()] == [0, 0, None, 1, None, 0, 1]


def test_no_groups_prints_nothing(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text(dumps(RECORDS[0]) + "\n" + dumps(RECORDS[3]) + "\n")
    outcome = run(str(path))
    assert outcome.exit_code == 0 and outcome.stdout == ""


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"path": "a.jpg", "hash": "ff"}\n{"path": \n', "r.jsonl:2: not valid JSON"),
        ('["a.jpg", "ff"]\n', "r.jsonl:1: not a JSON object"),
        ('{"path": "a.jpg", "hash": "ff"}\n\n{"path": "b.jpg", "hash": "fg"}\n', "r.jsonl:3: path 'b.jpg': hash 'fg'"),
        ('{"path": "a.jpg", "hash": "ff"}\n{"path": "b.jpg", "hash": "fff"}\n', "3 hex digits, expected 2"),
    ],
)
def test_bad_records_exit_2_naming_the_line(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text(content)
    outcome = run(str(path))
    assert outcome.exit_code == 2
    assert message in outcome.stderr


def test_bad_files_and_options_exit_2(tmp_path: Path, results: Path) -> None:
    binary = tmp_path / "photo.jpg"
    binary.write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)))
    cases = [
        ([str(tmp_path / "missing.jsonl")], "does not exist"),
        ([str(tmp_path)], "is a directory"),
        ([str(binary)], "not UTF-8"),
        ([str(results), "--max-distance", "17"], "0<=x<=16"),
        ([str(results), "--write-groups", str(tmp_path / "no" / "out.jsonl")], "folder does not exist"),
    ]
    for args, message in cases:
        outcome = run(*args)
        assert outcome.exit_code == 2, (args, outcome.output)
        assert message in outcome.stderr, (args, outcome.stderr)
    for spool in ([], ["--write-groups", str(tmp_path / "out.jsonl")]):
        outcome = CliRunner().invoke(main, ["dupes", "-", *spool], input=binary.read_bytes())
        assert outcome.exit_code == 2, (spool, outcome.output)
        assert "<stdin>: not UTF-8" in outcome.stderr


def test_console_script_reads_a_pipe(results: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "phashfleet.cli", "dupes", "-", "-d", "3"],
        input=results.read_text(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[0])["paths"] == ["a.jpg", "b.jpg", "d.jpg"]
