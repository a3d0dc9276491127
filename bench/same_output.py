"""Same output: one job run by the design before the result store (a git revision) and by this checkout.

The issue that took records out of Redis and the listing out of the operator asked that the final
output stay what the old design wrote for the same job, records and order aside. This script checks
that on a folder of FILES tiny PNGs (bench/synthfs.py's images written to disk, in folders of 1,000,
so the new listing has shards), with near-duplicate grouping on: it checks out REV into a git
worktree under .cache/bench, runs `phashfleet run` with that revision's code and with this
checkout's, each on the same manifest with a jsonl output, and compares the records by path. Groups
are compared as partitions (each file's group named by its group's first path), since group numbers
are arbitrary. It prints the counts, the fields compared, every difference (at most 10 shown) and
each run's seconds, and exits 1 if the outputs differ.

    python bench/same_output.py                        # 100,000 files against 395e5b1
    python bench/same_output.py --small                # 2,000 files: seconds
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import CACHE, ROOT, add_common_args, machine, report
from synthfs import FILES_PER_DIR, VARIANTS, tiny_png

#: The last revision with records in Redis and listing in the operator (before the result store).
OLD_DESIGN = "395e5b1"


def make_folder(files: int) -> Path:
    """FILES tiny PNGs under .cache/bench, in folders of FILES_PER_DIR (made once, reused)."""
    folder = CACHE / f"same-output-{files}"
    done = folder / ".complete"
    if done.exists():
        return folder
    for i in range(files):
        sub = folder / f"d{i // FILES_PER_DIR:04d}"
        if i % FILES_PER_DIR == 0:
            sub.mkdir(parents=True, exist_ok=True)
        (sub / f"f{i:07d}.png").write_bytes(tiny_png(i % VARIANTS))
    done.write_text("")
    return folder


def old_tree(rev: str) -> Path:
    """A worktree of `rev` under .cache/bench (made once)."""
    tree = CACHE / f"tree-{rev}"
    if not (tree / "worker").exists():
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), rev], check=True)
    return tree


def run_job(code: Path, source: Path, work: Path, label: str) -> tuple[float, Path]:
    """`phashfleet run` with the code of `code` on `source`; return (seconds, the output file)."""
    work.mkdir(parents=True, exist_ok=True)
    output = work / f"{label}.jsonl"
    output.unlink(missing_ok=True)
    manifest = work / f"{label}.yaml"
    job = {
        "apiVersion": "phashfleet.io/v1alpha1",
        "kind": "PhashJob",
        "metadata": {"name": f"same-{label}"},
        "spec": {
            "source": {"uri": str(source)},
            "batchSize": 1000,
            "duplicates": {"maxDistance": 6},
            "output": {"uri": str(output), "format": "jsonl"},
        },
    }
    manifest.write_text(json.dumps(job))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(code / "worker"), str(code / "operator")]),
        "PHASHFLEET_RESULT_STORE": str(work / f"{label}-results"),
    }
    where = subprocess.run(
        [sys.executable, "-c", "import phashfleet; print(phashfleet.__file__)"], env=env, capture_output=True, text=True
    ).stdout.strip()
    if not Path(where).is_relative_to(code):
        raise SystemExit(f"{label}: phashfleet comes from {where}, not from {code}")
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "phashfleet.cli", "run", str(manifest), "--allow-root", str(source)],
        env=env,
        cwd=str(work),
        capture_output=True,
        text=True,
    )
    seconds = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"{label}: phashfleet run failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return seconds, output


def canonical(output: Path) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Records by path, each group named by its first path; and the fields the records have."""
    records = [json.loads(line) for line in output.read_text().splitlines() if line]
    members: dict[Any, list[str]] = defaultdict(list)
    for record in records:
        if record.get("group") is not None:
            members[record["group"]].append(record["path"])
    name = {group: min(paths) for group, paths in members.items()}
    by_path = {}
    for record in records:
        if record.get("group") is not None:
            record["group"] = name[record["group"]]
        by_path[record["path"]] = record
    assert len(by_path) == len(records), f"{output}: a path appears twice"
    return by_path, sorted({k for r in records for k in r})


def main() -> int:
    """Run both designs on one folder and compare their outputs."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--rev", default=OLD_DESIGN, help="the old design's git revision")
    add_common_args(parser)
    args = parser.parse_args()
    if args.small:
        args.files = 2000
    source = make_folder(args.files)
    work = CACHE / f"same-output-runs-{args.files}"
    old_seconds, old_out = run_job(old_tree(args.rev), source, work, "old")
    new_seconds, new_out = run_job(ROOT, source, work, "new")
    old, old_fields = canonical(old_out)
    new, new_fields = canonical(new_out)
    fields = sorted(set(old_fields) & set(new_fields))
    differences = [f"only in the old output: {p}" for p in sorted(old.keys() - new.keys())]
    differences += [f"only in the new output: {p}" for p in sorted(new.keys() - old.keys())]
    for path in sorted(old.keys() & new.keys()):
        for field in fields:
            if old[path].get(field) != new[path].get(field):
                differences.append(f"{path}: {field} {old[path].get(field)!r} -> {new[path].get(field)!r}")
    groups = len({r["group"] for r in new.values() if r.get("group") is not None})
    print(f"same output: {args.files:,} files, maxDistance 6, old design {args.rev} vs this checkout")
    print(f"  old: {len(old):,} records in {old_seconds:.1f} s; new: {len(new):,} records in {new_seconds:.1f} s")
    print(f"  fields compared: {', '.join(fields)}")
    if set(old_fields) ^ set(new_fields):
        print(f"  fields in one output only: {sorted(set(old_fields) ^ set(new_fields))}")
    print(f"  {groups} duplicate groups; differences: {len(differences)}")
    for line in differences[:10]:
        print(f"    {line}")
    report(
        "same_output",
        {"files": args.files, "rev": args.rev},
        {
            "old_seconds": old_seconds,
            "new_seconds": new_seconds,
            "records": len(new),
            "groups": groups,
            "differences": len(differences),
            "fields": fields,
        },
        args.json,
        machine(),
    )
    return 1 if differences else 0


if __name__ == "__main__":
    raise SystemExit(main())
