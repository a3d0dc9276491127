"""Fleet efficiency: throughput of W worker processes divided by that of W plain processes side by side.

The ideal for W is measured, not multiplied: W plain processes at once, each hashing its share of
the same files with our own hashing (`phashfleet.hashing.hash_ref`, fast path, the Settings a job
gets) in a loop with no queue, wall time from all ready to the last one done. It runs before and
after the fleet runs and their mean is the reference, so a drift in the machine's load shows up in
both. The one-process rate through the public `hash_many` (which hands each file to a child
process, for per-file timeouts) is printed beside it. For each W the script starts
`phashfleet worker --processes W` on a throw-away Redis, waits until a warm-up job is done (that
time is the reported start-up), then times a PhashJob over the corpus with
`phashfleet.embedded.run.run_with_redis` (the `phashfleet run --redis` driver). A plot of throughput
against workers goes to bench/out/fleet.png.

    python bench/fleet.py                          # 2,000 JPEGs of 1280x1024, W = 1, 2
    python bench/fleet.py --images 5000 --workers 1,2 --json bench/out/fleet.json
    python bench/fleet.py --small                  # seconds; what CI runs
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    CACHE,
    BenchError,
    add_common_args,
    bench_redis,
    corpus_files,
    fleet_env,
    machine,
    mean_of_runs,
    photo_corpus,
    pid_of,
    print_table,
    report,
    save_plot,
    self_cpu_seconds,
    side_by_side,
    start_process,
    stop_cleanly_on_sigterm,
    tree_cpu_seconds,
    worker_argv,
)
from harness.process import ManagedProcess
from harness.redis_server import RedisServer


def run_job(
    redis: RedisServer, folder: Path, *, workers: int, batch_size: int, proc: ManagedProcess, timeout: float
) -> float:
    """Hash every JPEG of `folder` as one PhashJob on running workers; return the seconds it took."""
    from phashfleet.embedded.run import run_with_redis
    from phashfleet.job.spec import parse_spec

    spec = parse_spec(
        {
            "source": {"uri": f"file://{folder}", "include": ["*.jpg"]},
            "batchSize": batch_size,
            "ttlSecondsAfterFinished": 60,
        }
    )
    deadline = time.monotonic() + timeout

    def guard(done: int, total: int, rate: float) -> None:
        proc.check_alive()
        if time.monotonic() > deadline:
            raise BenchError(f"job not done within {timeout:.0f}s ({done}/{total})")

    started = time.monotonic()
    result = run_with_redis(
        spec,
        f"bench.fleet.{uuid.uuid4().hex[:8]}",
        (str(folder),),
        redis.url,
        jobs=workers,
        progress=guard,
        start_workers=False,
    )
    seconds = time.monotonic() - started
    expected = len(corpus_files(folder))
    if not result.ok or result.status.get("succeeded") != expected:
        raise BenchError(f"job ended {result.status}")
    return seconds


def cpu_now(proc: ManagedProcess, redis: RedisServer) -> tuple[float, float, float]:
    """CPU seconds so far of the workers (and every process they started), of Redis and of this driver."""
    if redis.proc is None:
        raise BenchError("Redis is not running")
    return tree_cpu_seconds(pid_of(proc)), tree_cpu_seconds(pid_of(redis.proc)), self_cpu_seconds()


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """The ideal for each W, then the fleet with each W, then the ideals again; return rows and references."""
    folder = photo_corpus(args.images, args.width, args.height)
    warm = photo_corpus(8, 64, 48)
    paths = corpus_files(folder)

    def ideals() -> dict[int, dict[str, Any]]:
        print(f"ideals: {', '.join(map(str, args.workers))} plain processes side by side...", file=sys.stderr)
        return {w: side_by_side(paths, w, "fast", [CACHE]) for w in args.workers}

    before = ideals()
    pooled = side_by_side(paths, 1, "hash_many", [CACHE])
    rows = []
    with bench_redis() as redis:
        os.environ.update({"PHASHFLEET_REDIS_URL": redis.url, "PHASHFLEET_REDIS_PASSWORD": redis.password})
        for workers in args.workers:
            redis.client().flushall()
            print(f"{workers} worker process(es)...", file=sys.stderr)
            spawned = time.monotonic()
            proc = start_process(
                f"fleet-w{workers}",
                worker_argv(workers),
                env=fleet_env(redis, roots=[CACHE]),
                log_dir=args.out / "logs",
            )
            try:
                run_job(redis, warm, workers=workers, batch_size=1, proc=proc, timeout=args.startup_timeout)
                startup = time.monotonic() - spawned
                redis.client().flushall()  # no content-cache entries from the warm-up
                cpu_before = cpu_now(proc, redis)
                seconds = run_job(
                    redis,
                    folder,
                    workers=workers,
                    batch_size=args.batch_size,
                    proc=proc,
                    timeout=60 + 20 * before[workers]["seconds"],
                )
                used = [b - a for a, b in zip(cpu_before, cpu_now(proc, redis), strict=True)]
            finally:
                proc.stop()
            rows.append(
                {
                    "workers": workers,
                    "images": len(paths),
                    "seconds": seconds,
                    "images_per_s": len(paths) / seconds,
                    "startup_s": startup,
                    "worker_cpu_s": used[0],
                    "redis_cpu_s": used[1],
                    "driver_cpu_s": used[2],
                    "cpu_ms_per_image": 1000 * sum(used) / len(paths),
                    "worker_busy": used[0] / (seconds * workers),
                }
            )
    after = ideals()
    references = {w: mean_of_runs(before[w], after[w]) for w in args.workers}
    for row in rows:
        ref = references[row["workers"]]
        row["ideal_images_per_s"] = ref["images_per_s"]
        row["ideal_cpu_ms_per_image"] = 1000 * ref["cpu_s"] / ref["images"]
        row["efficiency"] = row["images_per_s"] / ref["images_per_s"]
        # CPU per image against the ideal's: steadier than wall time when other work shares the cores.
        row["cpu_efficiency"] = row["ideal_cpu_ms_per_image"] / row["cpu_ms_per_image"]
    return {
        "ideals": {str(w): ref for w, ref in references.items()},
        "hash_many_one_process": {k: v for k, v in pooled.items() if k != "hashes"},
        "rows": rows,
        "corpus": {"images": len(paths), "width": args.width, "height": args.height, "batch_size": args.batch_size},
    }


def plot(results: dict[str, Any], info: dict[str, Any], out: Path) -> Path | None:
    """Throughput and the ideal line against worker processes, as bench/out/fleet.png."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is missing (pip install -e '.[bench]'): no plot", file=sys.stderr)
        return None
    rows = results["rows"]
    xs = [r["workers"] for r in rows]
    fig, ax = plt.subplots(figsize=(5, 3.6))
    ax.plot(
        [0, *xs],
        [0, *[r["ideal_images_per_s"] for r in rows]],
        "--",
        color="grey",
        label="W plain processes side by side (ideal)",
    )
    ax.plot(xs, [r["images_per_s"] for r in rows], "o-", label="phash-fleet")
    for row in rows:
        ax.annotate(
            f"{row['efficiency']:.0%}",
            (row["workers"], row["images_per_s"]),
            textcoords="offset points",
            xytext=(6, -12),
        )
    corpus = results["corpus"]
    ax.set(
        xlabel="worker processes",
        ylabel="images/s",
        xticks=xs,
        title=f"{corpus['images']} JPEGs {corpus['width']}x{corpus['height']}, {info['cores']} cores",
    )
    ax.set_ylim(bottom=0)
    ax.set_xlim(0, max(xs) + 0.5)
    ax.legend(loc="upper left")
    path = save_plot(fig, out, "fleet")
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    """Parse options, run, print the table, plot, write JSON when asked."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=2000, help="JPEGs in the corpus (default 2000)")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=1024)
    parser.add_argument("--workers", default="1,2", help="comma-separated worker process counts (default 1,2)")
    parser.add_argument("--batch-size", type=int, default=64, help="the job's batchSize (default 64, the CRD's)")
    parser.add_argument("--startup-timeout", type=float, default=120.0)
    add_common_args(parser)
    args = parser.parse_args(argv)
    if args.small:
        args.images, args.width, args.height, args.batch_size = 24, 160, 120, 4
    args.workers = [int(w) for w in str(args.workers).split(",") if w.strip()]
    stop_cleanly_on_sigterm()
    info = machine()
    results = measure(args)
    pooled = results["hash_many_one_process"]
    print_table(
        f"fleet efficiency: {results['corpus']['images']} JPEGs {args.width}x{args.height}, batchSize "
        f"{args.batch_size}; one process through hash_many (a child process per file hand-off) "
        f"{pooled['images_per_s']:.1f} images/s",
        results["rows"],
        [
            "workers",
            "images",
            "seconds",
            "images_per_s",
            "ideal_images_per_s",
            "efficiency",
            "cpu_ms_per_image",
            "ideal_cpu_ms_per_image",
            "cpu_efficiency",
            "worker_busy",
            "startup_s",
        ],
    )
    print(
        f"\n{info['date']}, {info['cores']} cores ({info['cpu']}); ideal: W plain processes side by side, each "
        "hashing its share with hash_ref in a loop, no queue, wall time from all ready to the last done (mean "
        "of a run before and one after the fleet); start-up (spawn until a warm-up job is done) is not in the "
        "throughput; cpu_ms_per_image: workers + Redis + driver; cpu_efficiency: ideal_cpu_ms_per_image / "
        "cpu_ms_per_image; worker_busy: workers' CPU / (seconds x W)"
    )
    results["plot"] = str(plot(results, info, args.out) or "")
    report(
        "fleet", {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}, results, args.json, info
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
