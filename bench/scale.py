"""Scale: one PhashJob of 10k -> 100k -> 1M files run by the real operator, and what it costs as the job grows.

A real control plane (etcd + kube-apiserver, tests/harness) starts once and gets the CRD. For each
size a fresh redis-server, result store and output folder, the real `phashfleet operator` process
and `phashfleet worker --processes W` start; a tiny warm-up job runs first (every worker process
starts its hashing child), then one PhashJob over `synthetic://nN/` (bench/synthfs.py: N names in
folders of 1,000, each a tiny PNG computed on the fly, so nothing but the control path grows).
Operator and workers find `synthetic://` through an fsspec entry point and are allowed it by
PHASHFLEET_EXTRA_SCHEMES. Everything is measured from outside the processes:

- files/s: from just before the create call to the watch event that shows the job Succeeded;
- status writes/s: MODIFIED events of the PhashJob on a watch over that time (and those of them
  that changed `.status`);
- Redis peak `used_memory` (INFO memory sampled every 0.5 s, and `used_memory_peak` at the end);
- operator peak RSS (/proc/PID/status VmRSS sampled, and VmHWM at the end);
- CPU per file over the job: the workers with their hashing processes, and the control path (operator,
  Redis, kube-apiserver, etcd), from /proc;
- the size of the job's output file and of its parts (bytes under `<result store>/jobs/`).

Sizes that would not fit in `--budget-minutes` (judged from the last size's rate) are
extrapolated, and the table says so: time at the last rate, the rest linearly from the last two
measured sizes.

    python bench/scale.py                                   # 10k, 100k, 1M within the budget
    python bench/scale.py --sizes 10000,100000,1000000,10000000 --budget-minutes 60 --json bench/out/scale.json
    python bench/scale.py --small                           # seconds; what CI runs
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    CACHE,
    ROOT,
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
    tree_cpu_seconds,
    worker_argv,
)
from harness.controlplane import ControlPlane
from harness.operator_proc import OperatorProcess
from harness.wait import wait_for
from jobwatch import GROUP, PLURAL, VERSION, JobWatch, operator_healthy
from synthfs import PROTOCOL, plugin_dir, root_uri

MB = 1024 * 1024
CRD_FILE = ROOT / "crds" / "phashjobs.phashfleet.io.yaml"
#: Seconds between samples of Redis and operator memory while a job runs.
SAMPLE_EVERY = 0.5
#: Seconds a size may need on top of its hashing: start-up, warm-up, the final pass.
OVERHEAD_S = 40.0
#: Measured figures that an extrapolated row takes linearly from the last two measured sizes.
LINEAR = ("operator_peak_mb", "redis_peak_mb", "output_mb", "parts_mb")


class Sampler:
    """Samples Redis `used_memory` and the operator's RSS in a thread until stopped; keeps the peaks."""

    def __init__(self, redis: Any, operator_pid: int) -> None:
        self.redis, self.pid = redis, operator_pid
        self.redis_peak = self.operator_peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_EVERY):
            self.redis_peak = max(self.redis_peak, redis_memory(self.redis)["used_memory"])
            self.operator_peak = max(self.operator_peak, rss_bytes(self.pid))

    def stop(self) -> None:
        """Stop sampling and wait for the thread."""
        self._stop.set()
        self._thread.join()


def cpu_split(workers_pid: int, control_pids: list[int]) -> tuple[float, float]:
    """CPU seconds so far of the workers (with their hashing processes) and of the control path: the
    operator, Redis, the apiserver and etcd."""
    return tree_cpu_seconds(workers_pid), sum(tree_cpu_seconds(pid) for pid in control_pids)


def peak_rss(pid: int) -> int:
    """VmHWM (the peak resident memory over the process's life) from /proc, 0 when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def tree_bytes(folder: Path) -> int | None:
    """Bytes of the files under `folder`, None when it does not exist."""
    if not folder.is_dir():
        return None
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def job_body(name: str, files: int, batch_size: int, output: Path) -> dict[str, Any]:
    """A PhashJob over synthetic://nFILES/ with a jsonl output."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "PhashJob",
        "metadata": {"name": name},
        "spec": {
            "source": {"uri": root_uri(files), "include": ["**/*.png"]},
            "batchSize": batch_size,
            "output": {"uri": f"file://{output}", "format": "jsonl"},
        },
    }


def run_size(plane: ControlPlane, files: int, args: argparse.Namespace, timeout: float) -> dict[str, Any]:
    """Run one job of `files` files with a fresh Redis, result store, operator and workers; return its row."""
    from kubernetes import client

    namespace = f"scale-{files}"
    plane.kubectl("create", "namespace", namespace)
    work = Path(tempfile.mkdtemp(prefix=f"phashfleet-scale-{files}-"))
    store, out = work / "results", work / "out"
    store.mkdir()
    out.mkdir()
    logs = args.out / "logs"
    api = client.CustomObjectsApi(plane.api_client())
    try:
        with bench_redis() as redis:
            env = fleet_env(redis)
            env["PYTHONPATH"] = os.pathsep.join([str(plugin_dir(CACHE / "fsspec-plugin")), env["PYTHONPATH"]])
            env |= {
                "PHASHFLEET_EXTRA_SCHEMES": PROTOCOL,
                "PHASHFLEET_RESULT_STORE": str(store),
                "PHASHFLEET_OUTPUT_ROOTS": str(out),
                "PHASHFLEET_AUTOSCALING": "none",
                "PHASHFLEET_WORKER_NAMESPACE": namespace,
            }
            workers = start_process(
                f"scale-workers-{files}",
                worker_argv(args.workers),
                env=env,
                log_dir=logs,
            )
            operator = OperatorProcess(f"scale-operator-{files}", plane.kubeconfig, logs, namespace=namespace, env=env)
            operator.start()
            watch = None
            try:
                wait_for(lambda: operator_healthy(operator), timeout=60, what="the operator's /healthz")
                watch = JobWatch(plane.api_client(), namespace)

                def alive() -> None:
                    workers.check_alive()
                    operator.check_alive()

                def create(name: str, n: int, batch: int) -> float:
                    body = job_body(name, n, batch, out / f"{name}.jsonl")
                    at = time.monotonic()
                    api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
                    return at

                create("warmup", 4 * args.workers, 1)
                warm = watch.wait_ended(["warmup"], 120, alive)["warmup"]
                if warm.get("phase") != "Succeeded":
                    raise BenchError(f"the warm-up job ended {warm}")
                baseline = rss_bytes(pid_of(operator))
                sampler = Sampler(redis, pid_of(operator))
                name = f"scale-{files}"
                control = [pid_of(p) for p in (operator, redis.proc, plane.apiserver, plane.etcd)]
                cpu_before = cpu_split(pid_of(workers), control)
                created = create(name, files, args.batch_size)
                try:
                    status = watch.wait_ended([name], timeout, alive)[name]
                finally:
                    sampler.stop()
                worker_cpu, control_cpu = (
                    b - a for a, b in zip(cpu_before, cpu_split(pid_of(workers), control), strict=True)
                )
                seconds = watch.seen[name][status["phase"]] - created
                running_at = watch.seen[name].get("Running", float("nan")) - created
                op_peak = max(sampler.operator_peak, peak_rss(pid_of(operator)))
                redis_peak = max(sampler.redis_peak, redis_memory(redis)["used_memory_peak"])
                modified, status_modified = watch.modified.get(name, 0), watch.status_modified.get(name, 0)
                events = [(round(at - created, 3), kind, what, phase) for at, kind, what, phase in watch.events[name]]
            finally:
                if watch:
                    watch.stop()
                operator.stop()
                workers.stop()
        output_file = out / f"{name}.jsonl"
        output_bytes = output_file.stat().st_size if output_file.exists() else None
        # The 8-file warm-up job's parts are in there too: a few kB.
        parts_bytes = tree_bytes(store / "jobs")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    done = sum(status.get(k) or 0 for k in ("succeeded", "failed", "skipped"))
    if status.get("phase") != "Succeeded" or done != files:
        raise BenchError(f"{files} files: job ended {status}")
    return {
        "files": files,
        "measured": True,
        "seconds": seconds,
        "files_per_s": files / seconds,
        "running_seen_s": running_at,
        "worker_cpu_us_per_file": worker_cpu / files * 1e6,
        "control_cpu_us_per_file": control_cpu / files * 1e6,
        "operator_baseline_mb": baseline / MB,
        "operator_peak_mb": op_peak / MB,
        "redis_peak_mb": redis_peak / MB,
        "modified_events": modified,
        "status_changes": status_modified,
        "status_writes_per_s": modified / seconds,
        "status_changes_per_s": status_modified / seconds,
        "output_mb": None if output_bytes is None else output_bytes / MB,
        "parts_mb": None if parts_bytes is None else parts_bytes / MB,
        "ok": status.get("succeeded"),
        "failed": status.get("failed"),
        "skipped": status.get("skipped"),
        "events": events,
    }


def extrapolate(files: int, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """A row for a size that was not run: time at the last rate, LINEAR figures along the last two measured sizes."""
    measured = [r for r in rows if r["measured"]]
    last = measured[-1]
    before = measured[-2] if len(measured) > 1 else None
    row: dict[str, Any] = {"files": files, "measured": False}
    for key in LINEAR:
        if last[key] is None:
            row[key] = None
            continue
        slope = 0.0
        if before and before[key] is not None:
            slope = (last[key] - before[key]) / (last["files"] - before["files"])
        elif key in ("output_mb", "parts_mb"):
            slope = last[key] / last["files"]
        row[key] = max(0.0, last[key] + slope * (files - last["files"]))
    row.update(
        files_per_s=last["files_per_s"],
        seconds=files / last["files_per_s"],
        status_writes_per_s=last["status_writes_per_s"],
        status_changes_per_s=last["status_changes_per_s"],
        operator_baseline_mb=last["operator_baseline_mb"],
        worker_cpu_us_per_file=last["worker_cpu_us_per_file"],
        control_cpu_us_per_file=last["control_cpu_us_per_file"],
    )
    return row


def measure(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Start the control plane, run each size that fits the budget, extrapolate the others."""
    budget_end = time.monotonic() + args.budget_minutes * 60
    rows: list[dict[str, Any]] = []
    work = Path(tempfile.mkdtemp(prefix="phashfleet-scale-plane-"))
    plane = ControlPlane(work / "cluster").start()
    try:
        plane.kubectl("apply", "--server-side", "-f", str(CRD_FILE))
        plane.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd/phashjobs.phashfleet.io")
        for files in args.sizes:
            last = rows[-1] if rows else None
            remaining = budget_end - time.monotonic()
            predicted = OVERHEAD_S + (files / last["files_per_s"] * 1.2 if last else 0)
            if last and predicted > remaining:
                print(
                    f"{files:,} files: about {predicted:.0f}s needed, {remaining:.0f}s left: extrapolated",
                    file=sys.stderr,
                )
                rows.append(extrapolate(files, rows))
                continue
            print(f"{files:,} files...", file=sys.stderr)
            row = run_size(plane, files, args, timeout=max(remaining, 120))
            print(
                f"  {row['seconds']:.1f}s ({row['files_per_s']:,.0f} files/s), operator peak "
                f"{row['operator_peak_mb']:.0f} MB, redis peak {row['redis_peak_mb']:.1f} MB, "
                f"{row['status_writes_per_s']:.2f} writes/s",
                file=sys.stderr,
            )
            rows.append(row)
    finally:
        plane.stop()
        shutil.rmtree(work, ignore_errors=True)
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
    series = [("operator_peak_mb", "operator peak RSS"), ("redis_peak_mb", "Redis peak used_memory")]
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
    parser.add_argument("--sizes", default="10000,100000,1000000", help="comma-separated job sizes (10000000 too)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=1000,
        help="the job's batchSize (default 1000, the CRD's maximum: a million tiny files)",
    )
    parser.add_argument(
        "--budget-minutes", type=float, default=15.0, help="sizes that would end later are extrapolated (default 15)"
    )
    add_common_args(parser)
    args = parser.parse_args(argv)
    if args.small:
        args.sizes, args.batch_size = "200,2000", 100
    args.sizes = [int(s) for s in str(args.sizes).split(",") if s.strip()]
    stop_cleanly_on_sigterm()
    info = machine()
    rows = measure(args)
    for row in rows:
        row["measured"] = "measured" if row["measured"] is True else "extrapolated"
    print_table(
        f"scale: one job on synthetic:// run by the real operator (kube-apiserver, phashfleet operator), "
        f"{args.workers} worker processes, batchSize {args.batch_size}",
        rows,
        [
            "files",
            "measured",
            "seconds",
            "files_per_s",
            "operator_baseline_mb",
            "operator_peak_mb",
            "redis_peak_mb",
            "status_writes_per_s",
            "status_changes_per_s",
            "worker_cpu_us_per_file",
            "control_cpu_us_per_file",
            "output_mb",
            "parts_mb",
        ],
    )
    print(
        f"\n{info['date']}, {info['cores']} cores ({info['cpu']}); seconds = create call -> Succeeded on the watch; "
        "status_writes_per_s = MODIFIED events of the PhashJob on the watch / seconds; *_cpu_us_per_file = CPU of the "
        "workers with their hashing processes, and of the control path (operator, Redis, kube-apiserver, etcd), over "
        "the job, per file; parts_mb '-' = no result store "
        "(<store>/jobs) was written"
    )
    outcome = [r for r in rows if r["measured"] == "measured"][-1]
    print(
        f"records of the {outcome['files']:,}-file job: ok {outcome['ok']}, failed {outcome['failed']}, "
        f"skipped {outcome['skipped']}; {outcome['modified_events']} MODIFIED events, "
        f"{outcome['status_changes']} of them changed .status"
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
