"""bench/dupes.py runs end to end on a tiny size (`--small`): not a timed test, it proves the script works."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

from harness.ci import missing

ROOT = Path(__file__).resolve().parents[2]


def _run_dupes_bench(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], dict]:
    """Run bench/dupes.py with `args` and a JSON report; return the finished process and the report."""
    out = tmp_path / "dupes.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "dupes.py"), *args, "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done, json.loads(out.read_text())


def test_dupes_benchmark_compares_all_methods_with_full_recall(tmp_path: Path) -> None:
    if importlib.util.find_spec("pybktree") is None:
        missing("pybktree (the `bench` extra) is missing: pip install -e '.[bench]'")
    done, doc = _run_dupes_bench(tmp_path, "--small")
    assert doc["benchmark"] == "dupes" and "--small" in doc["command"]
    n = doc["params"]["n"]
    rows = {(row["method"].split(" ")[0], row["n"]): row for row in doc["results"]["rows"]}
    sample = doc["params"]["bktree_n"]
    assert set(rows) == {
        ("phashfleet", n),
        ("phashfleet", sample),
        ("BK-tree", sample),
        ("BK-tree", n),
        ("brute-force", n),
    }
    assert all(row["recall"] == 1.0 and row["seconds"] > 0 for row in rows.values())
    # Each row says in the table itself whether its time was measured or extrapolated.
    kinds = {key: row["measured/extrapolated"] for key, row in rows.items()}
    assert kinds == {
        ("phashfleet", n): "measured",
        ("phashfleet", sample): "measured",
        ("BK-tree", sample): "measured",
        ("BK-tree", n): "extrapolated",
        ("brute-force", n): "extrapolated",
    }
    assert "measured/extrapolated" in done.stdout and "(extrapolated)" in done.stdout
    assert doc["results"]["ours_peak_mb"] > 0 and "peak allocation" in done.stdout


def test_dupes_benchmark_sizes_reports_time_rss_and_recall_per_size(tmp_path: Path) -> None:
    done, doc = _run_dupes_bench(tmp_path, "--sizes", "3000,6000")
    rows = doc["results"]["sizes"]
    assert [(row["input"], row["n"]) for row in rows] == [
        ("words", 3000),
        ("records", 3000),
        ("words", 6000),
        ("records", 6000),
    ]
    assert all(row["recall"] == 1.0 and row["groups"] > 0 for row in rows)
    assert all(row["peak_rss_mb"] >= row["rss_before_mb"] > 0 and row["seconds"] > 0 for row in rows)
    assert "peak_rss_mb" in done.stdout
