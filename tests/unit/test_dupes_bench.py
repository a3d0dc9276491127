"""bench/dupes.py runs end to end on a tiny size (`--small`): not a timed test, it proves the script works."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

from harness.ci import missing

ROOT = Path(__file__).resolve().parents[2]


def test_dupes_benchmark_compares_all_methods_with_full_recall(tmp_path: Path) -> None:
    if importlib.util.find_spec("pybktree") is None:
        missing("pybktree (the `bench` extra) is missing: pip install -e '.[bench]'")
    out = tmp_path / "dupes.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "dupes.py"), "--small", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    doc = json.loads(out.read_text())
    assert doc["benchmark"] == "dupes" and "--small" in doc["command"]
    rows = {row["method"].split(" ")[0]: row for row in doc["results"]["rows"]}
    assert set(rows) == {"phashfleet", "BK-tree", "brute-force"}
    assert all(row["recall"] == 1.0 and row["total_s"] > 0 for row in rows.values())
    assert rows["BK-tree"]["extrapolated"] and "(extrapolated)" in done.stdout
