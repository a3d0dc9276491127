"""A hostile corpus through the real hashing pool: every file a clear record, memory bounded."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
from PIL import Image

#: What one hashing process may peak at on this corpus (the chart's worker limit is larger).
RSS_LIMIT_MB = 1024


def _corpus(root) -> dict[str, str]:
    """Write the corpus; return name -> the status its record must have."""
    expect = {}
    frames = [Image.fromarray(np.full((16, 16), i % 256, dtype=np.uint8)) for i in range(3000)]
    frames[0].save(root / "many-frames.gif", save_all=True, append_images=frames[1:], duration=10)
    expect["many-frames.gif"] = "ok"
    pages = [Image.fromarray(np.full((64, 64), i * 300, dtype=np.uint16)) for i in range(200)]
    pages[0].save(root / "deep.tif", save_all=True, append_images=pages[1:])
    expect["deep.tif"] = "ok"
    Image.new("L", (8000, 8000)).save(root / "inflates.png")  # a few KB on disk, 64 MB decoded
    expect["inflates.png"] = "ok"
    Image.new("L", (14000, 14000)).save(root / "bomb.png")  # over twice Pillow's pixel limit
    expect["bomb.png"] = "failed"
    with open(root / "sparse.jpg", "wb") as f:  # 10 GB of nothing, all holes
        f.truncate(10 * 1024**3)
    expect["sparse.jpg"] = "failed"
    os.symlink(root / "loop.jpg", root / "loop.jpg")
    expect["loop.jpg"] = "failed"
    Image.new("RGB", (32, 32), "red").save(root / "new\nline.jpg")
    expect["new\nline.jpg"] = "ok"
    (root / "random.webp").write_bytes(os.urandom(4096))
    expect["random.webp"] = "failed"
    return expect


#: Runs the pool in a fresh process, so the peak RSS it reports is only of its own hashing children.
_RUN = """
import json, resource, sys
from phashfleet.hashing import Settings, hash_many
from phashfleet.hashing.pool import _close_all
refs, root = json.loads(sys.argv[1]), sys.argv[2]
records = list(hash_many(refs, Settings(timeout_seconds=60, allowed_roots=(root,))))
_close_all()
print(json.dumps({"records": records, "peak_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
"""


def test_every_hostile_file_becomes_a_clear_record_within_memory(tmp_path):
    expect = _corpus(tmp_path)
    refs = [str(tmp_path / name) for name in expect]
    out = subprocess.run(
        [sys.executable, "-c", _RUN, json.dumps(refs), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    got = {os.path.basename(r["path"]): r for r in result["records"]}
    for name, status in expect.items():
        assert got[name]["status"] == status, (name, got[name])
        if status != "ok":
            assert got[name]["reason"] and ":" in got[name]["reason"], got[name]
    assert got["bomb.png"]["reason"].startswith("decompression_bomb")
    peak_mb = result["peak_kb"] / 1024
    print(f"\nhostile corpus: peak RSS of a hashing process {peak_mb:.0f} MB")
    assert peak_mb < RSS_LIMIT_MB
