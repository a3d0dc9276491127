"""Scale: one PhashJob of 10k -> 100k -> 1M files, and what the control path costs as the job grows.

The source is `synthetic://nN/` (bench/synthfs.py): N names in folders of 1,000, each a tiny PNG
computed on the fly, so nothing but the control path grows. For each size a fresh redis-server
and `phashfleet worker --processes W` start (the workers find `synthetic://` through an fsspec
entry point), then bench/scale_driver.py drives the job with the operator's JobEngine, one tick a
second as the kopf timer does. Reported per size: enqueue-to-done time, the operator process's
peak RSS (and its baseline after start-up), Redis peak `used_memory` split into the job's
results hash and everything else, and status writes per second.

Sizes that would not fit in `--budget-minutes` (judged from the previous size's rate) are
extrapolated, and the table says so: time and results memory linearly, the rest flat.

    python bench/scale.py                                   # 10k, 100k, 1M within 9 minutes
    python bench/scale.py --budget-minutes 25 --json bench/out/scale.json
    python bench/scale.py --small                           # seconds; what CI runs
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    BENCH,
    CACHE,
    BenchError,
    add_common_args,
    bench_redis,
    fleet_env,
    machine,
    pid_of,
    print_table,
    redis_memory,
    report,
    rss_bytes,
    save_plot,
    start_process,
    stop_cleanly_on_sigterm,
)
from synthfs import plugin_dir

MB = 1024 * 1024
#: Seconds between samples of Redis and operator memory while a job runs.
SAMPLE_EVERY = 0.5
#: Seconds a size may need on top of its hashing: start-up, warm-up, the final listing pass.
OVERHEAD_S = 30.0


def run_size(files: int, args: argparse.Namespace, timeout: float) -> dict[str, Any]:
    """Run one job of `files` files on fresh Redis and workers; return its measurements."""
    with bench_redis() as redis:
        env = fleet_env(redis)
        env["PYTHONPATH"] = os.pathsep.join([str(plugin_dir(CACHE / "fsspec-plugin")), env["PYTHONPATH"]])
        env["PHASHFLEET_EXTRA_SCHEMES"] = "synthetic"  # workers refuse schemes beyond file, s3 and http(s)
        workers = start_process(
            f"scale-workers-{files}",
            [sys.executable, "-m", "phashfleet.cli", "worker", "--processes", str(args.workers), "--metrics-port", "0"],
            env=env,
            log_dir=args.out / "logs",
        )
        driver = start_process(
            f"scale-driver-{files}",
            [
                sys.executable,
                str(BENCH / "scale_driver.py"),
                "--files",
                str(files),
                "--workers",
                str(args.workers),
                "--batch-size",
                str(args.batch_size),
                "--timeout",
                str(timeout),
            ],
            env=env,
            log_dir=args.out / "logs",
        )
        peak_redis = peak_driver = 0
        deadline = time.monotonic() + timeout + 120
        try:
            while driver.alive:
                workers.check_alive()
                peak_redis = max(peak_redis, redis_memory(redis)["used_memory"])
                peak_driver = max(peak_driver, rss_bytes(pid_of(driver)))
                if time.monotonic() > deadline:
                    raise BenchError(f"{files} files: the driver did not finish in time")
                time.sleep(SAMPLE_EVERY)  # a sampling period, not a wait for a condition
            code = driver.proc.returncode if driver.proc else None
            if code != 0:
                raise BenchError(f"driver failed ({code}):\n{driver.log_tail()}")
            lines = [ln for ln in driver.log_path.read_text().splitlines() if ln.startswith('{"seconds"')]
            if not lines:
                raise BenchError(f"driver printed no result:\n{driver.log_tail()}")
            result = json.loads(lines[-1])
            client = redis.client()
            results_key = f"phashfleet:job:{result['job_id']}:results"
            results_bytes = int(client.memory_usage(results_key, samples=0) or 0)
            mem = redis_memory(redis)
            peak = max(peak_redis, mem["used_memory_peak"])
        finally:
            driver.stop()
            workers.stop()
    status = result["status"]
    done = (status.get("succeeded") or 0) + (status.get("failed") or 0) + (status.get("skipped") or 0)
    if status.get("phase") != "Succeeded" or done != files:
        raise BenchError(f"{files} files: job ended {status}")
    return {
        "files": files,
        "measured": True,
        "enqueue_to_done_s": result["seconds"],
        "files_per_s": files / result["seconds"],
        "first_tick_s": result["first_tick_s"],
        "max_tick_s": result["max_tick_s"],
        "operator_baseline_mb": result["baseline_rss"] / MB,
        "operator_peak_mb": max(result["peak_rss"], peak_driver) / MB,
        "operator_growth_mb": (max(result["peak_rss"], peak_driver) - result["baseline_rss"]) / MB,
        "redis_peak_mb": peak / MB,
        "redis_results_mb": results_bytes / MB,
        "redis_other_mb": (peak - results_bytes) / MB,
        "result_bytes_per_file": results_bytes / files,
        "status_writes": result["status_writes"],
        "status_writes_per_s": result["status_writes_per_s"],
        "ok": status.get("succeeded"),
        "failed": status.get("failed"),
        "skipped": status.get("skipped"),
        "failure_example": (result.get("failures_sample") or [None])[0],
        "timeline": result["timeline"],
    }


def extrapolate(files: int, last: dict[str, Any]) -> dict[str, Any]:
    """A row for a size that was not run: time and results memory scale linearly, the rest stays flat."""
    scale = files / last["files"]
    row = {
        k: last[k]
        for k in (
            "operator_baseline_mb",
            "operator_peak_mb",
            "operator_growth_mb",
            "redis_other_mb",
            "result_bytes_per_file",
            "status_writes_per_s",
            "files_per_s",
            "max_tick_s",
        )
    }
    row.update(
        {
            "files": files,
            "measured": False,
            "enqueue_to_done_s": last["enqueue_to_done_s"] * scale,
            "first_tick_s": last["first_tick_s"] * scale,
            "redis_results_mb": last["redis_results_mb"] * scale,
            "status_writes": round(last["status_writes"] * scale),
        }
    )
    row["redis_peak_mb"] = row["redis_other_mb"] + row["redis_results_mb"]
    return row


def measure(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Run each size that fits the budget, extrapolate the others."""
    budget_end = time.monotonic() + args.budget_minutes * 60
    rows: list[dict[str, Any]] = []
    for files in args.sizes:
        last = rows[-1] if rows else None
        remaining = budget_end - time.monotonic()
        predicted = OVERHEAD_S + (files / last["files_per_s"] * 1.2 if last else 0)
        if last and predicted > remaining:
            print(
                f"{files:,} files: about {predicted:.0f}s needed, {remaining:.0f}s left: extrapolated", file=sys.stderr
            )
            rows.append(extrapolate(files, next(r for r in reversed(rows) if r["measured"])))
            continue
        print(f"{files:,} files...", file=sys.stderr)
        row = run_size(files, args, timeout=max(remaining, 120))
        print(
            f"  {row['enqueue_to_done_s']:.1f}s, operator peak {row['operator_peak_mb']:.0f} MB, "
            f"redis peak {row['redis_peak_mb']:.0f} MB",
            file=sys.stderr,
        )
        rows.append(row)
    return rows


def plot(rows: list[dict[str, Any]], info: dict[str, Any], out: Path) -> Path | None:
    """Operator RSS and Redis memory against job size (log scale), as bench/out/scale.png."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is missing (pip install -e '.[bench]'): no plot", file=sys.stderr)
        return None
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    series = [
        ("operator_peak_mb", "operator peak RSS"),
        ("redis_peak_mb", "Redis peak used_memory"),
        ("redis_other_mb", "Redis without the results"),
    ]
    measured = [r for r in rows if r["measured"]]
    guessed = measured[-1:] + [r for r in rows if not r["measured"]]
    for key, label in series:
        (line,) = ax.plot([r["files"] for r in measured], [r[key] for r in measured], "o-", label=label)
        if len(guessed) > 1:
            ax.plot(
                [r["files"] for r in guessed],
                [r[key] for r in guessed],
                "o--",
                color=line.get_color(),
                fillstyle="none",
            )
    ax.set(
        xscale="log",
        xlabel="files in the job",
        ylabel="MB",
        title=f"memory vs job size ({info['cores']} cores)" + ("; dashed = extrapolated" if len(guessed) > 1 else ""),
    )
    ax.set_ylim(bottom=0)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1))
    path = save_plot(fig, out, "scale")
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    """Parse options, run, print the table, plot, write JSON when asked."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000", help="comma-separated job sizes")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=1000,
        help="the job's batchSize (default 1000, the CRD's maximum: a million tiny files)",
    )
    parser.add_argument(
        "--budget-minutes", type=float, default=9.0, help="sizes that would end later are extrapolated (default 9)"
    )
    add_common_args(parser)
    args = parser.parse_args(argv)
    if args.small:
        args.sizes, args.batch_size = "200,2000", 100
    args.sizes = [int(s) for s in str(args.sizes).split(",") if s.strip()]
    stop_cleanly_on_sigterm()
    info = machine()
    rows = measure(args)
    print_table(
        f"scale: one job on synthetic://, {args.workers} worker processes, batchSize {args.batch_size}, "
        "operator tick 1/s",
        rows,
        [
            "files",
            "measured",
            "enqueue_to_done_s",
            "files_per_s",
            "first_tick_s",
            "max_tick_s",
            "operator_baseline_mb",
            "operator_peak_mb",
            "redis_peak_mb",
            "redis_results_mb",
            "redis_other_mb",
            "result_bytes_per_file",
            "status_writes_per_s",
        ],
    )
    print(
        f"\n{info['date']}, {info['cores']} cores ({info['cpu']}); first_tick_s includes counting the listing; "
        "operator = a process running the operator's JobEngine with kopf and its handlers loaded"
    )
    outcome = [r for r in rows if r["measured"]][-1]
    example = f"; e.g. {outcome['failure_example']}" if outcome.get("failure_example") else ""
    print(
        f"records of the {outcome['files']:,}-file job: ok {outcome['ok']}, failed {outcome['failed']}, "
        f"skipped {outcome['skipped']}{example}"
    )
    plot_path = plot(rows, info, args.out)
    report(
        "scale",
        {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        {"rows": rows, "plot": str(plot_path or "")},
        args.json,
        info,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
