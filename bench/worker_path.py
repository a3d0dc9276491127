"""Worker path: one worker process's BatchHasher on batches of tiny synthetic PNGs, no queue, no operator.

This process plays one `phashfleet worker` process: an in-memory job store hands out batches of
`synthetic://` files (bench/synthfs.py, a 16x16 PNG each), and `BatchHasher` (the real actor's body:
lease, content-cache look-up, the hashing child, metrics in Prometheus multiprocess mode, the part
written to a result store in a temp folder) hashes them one after the other. Measured side by side
in the same run, on the same files: `hash_ref` called in a plain loop in this process (the ideal:
what the hashing itself costs, without the child hand-off, the cache or the metrics).

Reported: files/s of each, the worker path as a share of the ideal, and the CPU per file of the
worker process and of its hashing child (from /proc), which say where the rest of the time goes.
`--code DIR` runs another checkout's worker code under this same script (it only uses interfaces
both have), to compare two versions on one machine:

    python bench/worker_path.py                      # 20 batches of 1000
    python bench/worker_path.py --batches 5 --json bench/out/worker_path.json
    python bench/worker_path.py --code /path/to/other/checkout
    python bench/worker_path.py --small              # seconds; what CI runs
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import CACHE, BenchError, add_common_args, machine, print_table, report, self_cpu_seconds, tree_cpu_seconds
from synthfs import FILES_PER_DIR, PROTOCOL, SyntheticFileSystem, plugin_dir, root_uri

JOB_ID = "bench.worker-path.0"


def refs_of(count: int) -> list[str]:
    """The first `count` files of a synthetic source of `count` files, in listing order."""
    root = root_uri(count)
    return [f"{root}d{i // FILES_PER_DIR:04d}/f{i:07d}.png" for i in range(count)]


def ideal(refs: list[str], settings: Any) -> dict[str, Any]:
    """hash_ref on each file in a plain loop in this process."""
    from phashfleet.hashing import hash_ref

    hash_ref(refs[0], settings)
    cpu, start = self_cpu_seconds(), time.monotonic()
    records = [hash_ref(ref, settings) for ref in refs]
    seconds = time.monotonic() - start
    return {"seconds": seconds, "cpu_s": self_cpu_seconds() - cpu, "records": records}


def worker_path(refs: list[str], batch_size: int, job_settings: dict[str, Any], store_dir: Path) -> dict[str, Any]:
    """BatchHasher over `refs` in batches of `batch_size`, with an in-memory job store; CPU of this process and its child."""
    from phashfleet.state.memory_store import MemoryJobStore
    from phashfleet.state.result_store import ResultStore
    from phashfleet.worker.actor import BatchHasher

    store = MemoryJobStore()
    results = ResultStore(str(store_dir))
    hasher = BatchHasher(store, results, ())  # type: ignore[arg-type]  # the memory store has the same interface
    store.create(JOB_ID, job_settings, len(refs) + 1)
    store.hand_out(JOB_ID, 0, refs[:1], time.time(), False)
    if hasher(JOB_ID, 0) != "done":  # starts the hashing child: not part of the measured time
        raise BenchError("the warm-up batch was not done")
    batches = [refs[i : i + batch_size] for i in range(0, len(refs), batch_size)]
    for k, files in enumerate(batches, start=1):
        store.hand_out(JOB_ID, k, files, time.time(), k == len(batches))
    me = os.getpid()
    mine, everything, start = self_cpu_seconds(), tree_cpu_seconds(me), time.monotonic()
    for k in range(1, len(batches) + 1):
        outcome = hasher(JOB_ID, k)
        if outcome != "done":
            raise BenchError(f"batch {k}: {outcome}")
    seconds = time.monotonic() - start
    worker_cpu = self_cpu_seconds() - mine
    child_cpu = tree_cpu_seconds(me) - everything - worker_cpu
    snap = store.snapshot(JOB_ID)
    if snap.ok != len(refs) + 1:
        raise BenchError(f"{snap.ok} ok records of {len(refs) + 1}: {store.failures(JOB_ID)[:1]}")
    return {"seconds": seconds, "worker_cpu_s": worker_cpu, "child_cpu_s": child_cpu}


def main(argv: list[str] | None = None) -> int:
    """Parse options, measure the ideal, the worker path and the ideal again, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=20, help="batches to hash (default 20)")
    parser.add_argument("--batch-size", type=int, default=1000, help="files per batch (default 1000)")
    parser.add_argument("--code", type=Path, help="a checkout whose worker/ code to run (default: this one)")
    add_common_args(parser)
    args = parser.parse_args(argv)
    if args.code:
        sys.path.insert(0, str(args.code.resolve() / "worker"))  # before anything imports phashfleet
    if args.small:
        args.batches, args.batch_size = 2, 100
    work = Path(tempfile.mkdtemp(prefix="phashfleet-worker-path-"))
    # As `phashfleet worker` runs: metrics in multiprocess mode, the synthetic scheme allowed.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(work / "prom")
    (work / "prom").mkdir()
    os.environ["PHASHFLEET_EXTRA_SCHEMES"] = PROTOCOL
    # The hashing child finds synthetic:// through the plugin's entry point (as scale.py's workers do).
    paths = [str(plugin_dir(CACHE / "fsspec-plugin")), str(Path(__file__).resolve().parent)]
    os.environ["PYTHONPATH"] = os.pathsep.join(
        paths + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    )
    import fsspec

    fsspec.register_implementation(PROTOCOL, SyntheticFileSystem, clobber=True)
    import phashfleet
    from phashfleet.hashing import Settings
    from phashfleet.job.spec import parse_spec

    refs = refs_of(args.batches * args.batch_size)
    spec = parse_spec({"source": {"uri": root_uri(len(refs)), "include": ["**/*.png"]}})
    job_settings = spec.hash_settings()
    settings = Settings.from_job(job_settings, ())
    info = machine()
    try:
        before = ideal(refs, settings)
        path = worker_path(refs, args.batch_size, job_settings, work / "results")
        after = ideal(refs, settings)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    bad = [r for r in before["records"] if r["status"] != "ok"]
    if bad:
        raise BenchError(f"hash_ref failed on {len(bad)} file(s), e.g. {bad[0]}")
    n = len(refs)
    ideal_s = (before["seconds"] + after["seconds"]) / 2
    code = str(Path(phashfleet.__file__).resolve().parents[2])
    rows = [
        {
            "loop": "hash_ref in-process (ideal)",
            "files_per_s": n / ideal_s,
            "us_per_file": ideal_s / n * 1e6,
            "worker_cpu_us": (before["cpu_s"] + after["cpu_s"]) / 2 / n * 1e6,
            "child_cpu_us": None,
            "share_of_ideal": 1.0,
        },
        {
            "loop": "BatchHasher + hashing child",
            "files_per_s": n / path["seconds"],
            "us_per_file": path["seconds"] / n * 1e6,
            "worker_cpu_us": path["worker_cpu_s"] / n * 1e6,
            "child_cpu_us": path["child_cpu_s"] / n * 1e6,
            "share_of_ideal": ideal_s / path["seconds"],
        },
    ]
    print_table(
        f"worker path: {n:,} tiny PNGs in batches of {args.batch_size}, one worker process, the code of {code}",
        rows,
        ["loop", "files_per_s", "us_per_file", "worker_cpu_us", "child_cpu_us", "share_of_ideal"],
    )
    print(
        f"\n{info['date']}, {info['cores']} cores ({info['cpu']}), load {info['load_average_at_start'][0]:.2f}; "
        "ideal = mean of a loop before and one after; CPU us per file from /proc (worker = this process)"
    )
    report(
        "worker_path", {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}, rows, args.json, info
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
