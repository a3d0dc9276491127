"""bench/hash_speed.py runs end to end on tiny images (`--small`): table on stdout, JSON written.

Not a timed test: it proves the benchmark works and that its exact column really is imagehash.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_small_benchmark_prints_and_writes_json(tmp_path):
    out = tmp_path / "hash_speed.json"
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "hash_speed.py"), "--small", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert run.returncode == 0, run.stderr
    assert "jpeg-12mp" in run.stdout and "fast x" in run.stdout
    report = json.loads(out.read_text())
    assert report["command"].startswith("python bench/hash_speed.py --small")
    distances = {row["algorithm"]: row for row in report["real_photo_distances"]}
    assert set(distances) == {"phash", "dhash", "ahash", "whash", "colorhash"}
    for row in distances.values():
        assert sum(row["bits"].values()) == row["files"] > 0 and set(row["bits"]) == {"0", "1", "2", "3", "4+"}
    assert "fast path vs imagehash" in run.stdout and "ident%" in run.stdout
    sets = {r["set"]: r for r in report["results"]}
    assert {"jpeg-12mp", "jpeg-1mp", "png-12mp", "webp-12mp"} <= set(sets)
    for result in sets.values():
        assert result["exact_identical_pct"] == 100.0
        assert result["fast_max_bits"] <= 2
        assert set(result["images_per_s"]) == {"imagehash", "exact", "fast"}
        assert result["images_per_s"]["fast"] > 0
        assert 0 <= result["full_decode_pct"] <= 100
    # The fast path's floor on JPEGs: a bare 1/8-scale decode, timed beside the rest.
    for name in ("jpeg-12mp", "jpeg-1mp"):
        assert sets[name]["decode_1_8_ms_per_image"] > 0 and sets[name]["decode_1_8_pct_of_imagehash"] > 0
    assert sets["png-12mp"]["decode_1_8_ms_per_image"] is None
    assert "full%" in run.stdout and "%ihash" in run.stdout
