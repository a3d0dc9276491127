"""Fleet efficiency: throughput of W worker processes divided by (the single-process raw loop x W).

The raw loop is our own hashing (`phashfleet.hashing.hash_ref`, fast path) over the same files
in one process with no queue; it runs before and after the fleet runs and their mean is the
reference, so a drift in the machine's load shows up in both. The rate through the public
`hash_many` (one child process per worker, for per-file timeouts) is printed beside it. For each W the script starts
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
    Proc,
    RedisServer,
    add_common_args,
    corpus_files,
    fleet_env,
    machine,
    ours_loop,
    photo_corpus,
    print_table,
    report,
    save_plot,
    self_cpu_seconds,
    stop_cleanly_on_sigterm,
    tree_cpu_seconds,
)


def run_job(redis: RedisServer, folder: Path, *, workers: int, batch_size: int, proc: Proc, timeout: float) -> float:
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


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Raw loop, then each W, then the raw loop again; return rows and the reference rate."""
    folder = photo_corpus(args.images, args.width, args.height)
    warm = photo_corpus(8, 64, 48)
    paths = corpus_files(folder)
    raw_before, raw_cpu = ours_loop(paths, [CACHE])
    pooled, _ = ours_loop(paths, [CACHE], pooled=True)
    rows = []
    with RedisServer() as redis:
        os.environ.update({"PHASHFLEET_REDIS_URL": redis.url, "PHASHFLEET_REDIS_PASSWORD": redis.password})
        for workers in args.workers:
            redis.client().flushall()
            print(f"{workers} worker process(es)...", file=sys.stderr)
            spawned = time.monotonic()
            proc = Proc(
                f"fleet-w{workers}",
                [sys.executable, "-m", "phashfleet.cli", "worker", "--processes", str(workers), "--metrics-port", "0"],
                env=fleet_env(redis, roots=[CACHE]),
                log_dir=args.out / "logs",
            )
            try:
                run_job(redis, warm, workers=workers, batch_size=1, proc=proc, timeout=args.startup_timeout)
                startup = time.monotonic() - spawned
                redis.client().flushall()  # no content-cache entries from the warm-up
                cpu_before = (
                    tree_cpu_seconds(proc.popen.pid),
                    tree_cpu_seconds(redis.proc.popen.pid),
                    self_cpu_seconds(),
                )
                seconds = run_job(
                    redis,
                    folder,
                    workers=workers,
                    batch_size=args.batch_size,
                    proc=proc,
                    timeout=60 + 20 * raw_before / workers,
                )
                used = [
                    b - a
                    for a, b in zip(
                        cpu_before,
                        (tree_cpu_seconds(proc.popen.pid), tree_cpu_seconds(redis.proc.popen.pid), self_cpu_seconds()),
                        strict=False,
                    )
                ]
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
    raw_after, _ = ours_loop(paths, [CACHE])
    raw_rate = len(paths) / ((raw_before + raw_after) / 2)
    for row in rows:
        row["ideal_images_per_s"] = raw_rate * row["workers"]
        row["efficiency"] = row["images_per_s"] / row["ideal_images_per_s"]
    return {
        "raw_loop": {
            "images": len(paths),
            "seconds_before": raw_before,
            "seconds_after": raw_after,
            "images_per_s": raw_rate,
            "hash_many_images_per_s": len(paths) / pooled,
            "cpu_ms_per_image": 1000 * raw_cpu / len(paths),
        },
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
    ax.plot([0, *xs], [0, *[r["ideal_images_per_s"] for r in rows]], "--", color="grey", label="raw loop x W (ideal)")
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
    raw = results["raw_loop"]
    print_table(
        f"fleet efficiency: {raw['images']} JPEGs {args.width}x{args.height}, batchSize {args.batch_size}; "
        f"raw loop (hash_ref, 1 process, no queue) {raw['images_per_s']:.1f} images/s, through hash_many "
        f"{raw['hash_many_images_per_s']:.1f}",
        results["rows"],
        [
            "workers",
            "images",
            "seconds",
            "images_per_s",
            "ideal_images_per_s",
            "efficiency",
            "cpu_ms_per_image",
            "worker_busy",
            "startup_s",
        ],
    )
    print(
        f"\n{info['date']}, {info['cores']} cores ({info['cpu']}); ideal = raw loop x W; start-up (spawn until a "
        "warm-up job is done) is not in the throughput; raw loop CPU "
        f"{raw['cpu_ms_per_image']:.1f} ms/image; cpu_ms_per_image: workers + Redis + driver; "
        "worker_busy: workers' CPU / (seconds x W)"
    )
    results["plot"] = str(plot(results, info, args.out) or "")
    report(
        "fleet", {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}, results, args.json, info
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
