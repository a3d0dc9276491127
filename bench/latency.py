"""Latency: how long a one-file PhashJob takes from create to Succeeded on a warm fleet.

Starts a real control plane (etcd + kube-apiserver, tests/harness), redis-server, `phashfleet
operator` and `phashfleet worker --processes W`, installs the CRD, warms every worker up, then
creates one-file PhashJobs (each its own distinct image) one after another, then N at once (in
rounds), and watches them through the apiserver. A job's latency is client-side: from just before
its create call to the watch event that shows it `Succeeded`; its hash is then read from its
output (spec.output, jsonl), which the operator writes before it marks the job Succeeded. Each
job's watch events also say when it was first seen Pending and Running, to show where the time goes.

Last, one big job (many tiny files) runs to show that a big job's status writes stay at most one a
second (phashfleet_status_writes_total from the operator's /metrics over its create-to-done time).

    python bench/latency.py                        # 50 one after another, 50 as 5 rounds of 10, 5,000-file job
    python bench/latency.py --json bench/out/latency.json
    python bench/latency.py --small                # seconds; what CI runs
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    ROOT,
    BenchError,
    add_common_args,
    bench_redis,
    fleet_env,
    machine,
    pid_of,
    print_table,
    report,
    start_process,
    stop_cleanly_on_sigterm,
    tree_cpu_seconds,
    worker_argv,
)
from harness.controlplane import ControlPlane
from harness.operator_proc import OperatorProcess
from harness.wait import wait_for
from jobwatch import GROUP, PLURAL, VERSION, JobWatch, operator_healthy

CRD_FILE = ROOT / "crds" / "phashjobs.phashfleet.io.yaml"
NAMESPACE = "latency"
#: Seconds one job may take before the benchmark gives up on it.
JOB_TIMEOUT = 60.0


def write_images(folder: Path, count: int, size: int, seed: int) -> list[Path]:
    """`count` distinct noise PNGs of `size` x `size` (distinct bytes, so the content cache never answers)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    paths = []
    for i in range(count):
        path = folder / f"img{i:05d}.png"
        Image.frombytes("L", (size, size), rng.randbytes(size * size)).save(path)
        paths.append(path)
    return paths


class Bench:
    """The running parts and a way to run one-file jobs on them."""

    def __init__(self, plane: ControlPlane, watch: JobWatch, work: Path, operator: OperatorProcess) -> None:
        from kubernetes import client

        self.api = client.CustomObjectsApi(plane.api_client())
        self.watch = watch
        self.work = work
        self.operator = operator
        self.created: dict[str, float] = {}
        self._serial = 0

    def create(self, prefix: str, folder: Path, batch_size: int | None = None) -> str:
        """Create a PhashJob over `folder` with a jsonl output; return its name (its create time is kept)."""
        self._serial += 1
        name = f"{prefix}-{self._serial:04d}"
        spec: dict[str, Any] = {
            "source": {"uri": f"file://{folder}"},
            "output": {"uri": f"file://{self.work / 'out' / name}.jsonl", "format": "jsonl"},
        }
        if batch_size:
            spec["batchSize"] = batch_size
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "PhashJob", "metadata": {"name": name}, "spec": spec}
        self.created[name] = time.monotonic()
        self.api.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, body)
        return name

    def result(self, name: str) -> dict[str, Any]:
        """One finished one-file job: its latency, when it was first seen in each phase, and its hash."""
        seen, status = self.watch.seen[name], self.watch.status[name]
        if status.get("phase") != "Succeeded":
            raise BenchError(f"{name} ended {status.get('phase')}: {status.get('conditions')}")
        lines = Path(self.work / "out" / f"{name}.jsonl").read_text().splitlines()
        records = [json.loads(line) for line in lines if line.strip()]
        if len(records) != 1 or records[0].get("status") != "ok" or not records[0].get("hash"):
            raise BenchError(f"{name}: its output holds no hash: {records}")
        t0 = self.created[name]
        return {
            "name": name,
            "seconds": seen["Succeeded"] - t0,
            "pending_at": seen.get("Pending", float("nan")) - t0,
            "running_at": seen.get("Running", float("nan")) - t0,
            "hash": records[0]["hash"],
        }

    def one_after_another(self, folders: list[Path]) -> list[dict[str, Any]]:
        """Each one-file job created when the one before has ended."""
        results = []
        for folder in folders:
            name = self.create("seq", folder)
            self.watch.wait_ended([name], JOB_TIMEOUT)
            results.append(self.result(name))
        return results

    def at_once(self, folders: list[Path], concurrency: int) -> list[dict[str, Any]]:
        """Rounds of `concurrency` one-file jobs created together; a round starts when the last one ended."""
        results = []
        for start in range(0, len(folders), concurrency):
            names = [self.create("par", folder) for folder in folders[start : start + concurrency]]
            self.watch.wait_ended(names, JOB_TIMEOUT)
            results.extend(self.result(name) for name in names)
        return results

    def status_writes(self, name: str) -> float:
        """phashfleet_status_writes_total of one job, from the operator's /metrics."""
        with urllib.request.urlopen(self.operator.metrics_url, timeout=10) as resp:
            text = resp.read().decode()
        needle = f'phashjob="{name}"'
        for line in text.splitlines():
            if line.startswith("phashfleet_status_writes_total{") and needle in line:
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    def big_job(self, folder: Path, files: int) -> dict[str, Any]:
        """One job of many tiny files: its create-to-done time and status writes per second."""
        cpu = tree_cpu_seconds(pid_of(self.operator))
        name = self.create("big", folder)
        self.watch.wait_ended([name], JOB_TIMEOUT + files / 20)
        cpu = tree_cpu_seconds(pid_of(self.operator)) - cpu
        status = self.watch.status[name]
        if status.get("phase") != "Succeeded" or status.get("succeeded") != files:
            raise BenchError(f"{name} ended {status}")
        seconds = self.watch.seen[name]["Succeeded"] - self.created[name]
        writes = self.status_writes(name)
        return {
            "files": files,
            "seconds": seconds,
            "status_writes": writes,
            "status_writes_per_s": writes / seconds,
            "operator_cpu_s": cpu,
        }


def summary(mode: str, results: list[dict[str, Any]]) -> dict[str, Any]:
    """p50/p95/max of the latencies, and the medians of when Pending and Running were first seen."""
    seconds = sorted(r["seconds"] for r in results)
    p95 = seconds[min(len(seconds) - 1, max(0, round(0.95 * len(seconds)) - 1))]
    return {
        "mode": mode,
        "jobs": len(seconds),
        "p50_s": statistics.median(seconds),
        "p95_s": p95,
        "max_s": seconds[-1],
        "pending_seen_p50_s": statistics.median(r["pending_at"] for r in results),
        "running_seen_p50_s": statistics.median(r["running_at"] for r in results),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Start everything, warm up, run both modes and the big job; return the measurements."""
    work = Path(tempfile.mkdtemp(prefix="phashfleet-latency-"))
    data = work / "data"
    one_file = []
    for i in range(args.warmup + 2 * args.jobs):
        folder = data / f"one-{i:03d}"
        write_images(folder, 1, args.image_size, seed=i)
        one_file.append(folder)
    big = data / "big"
    write_images(big, args.big_files, 16, seed=10_000)
    logs = args.out / "logs"
    plane = ControlPlane(work / "cluster").start()
    try:
        plane.kubectl("apply", "--server-side", "-f", str(CRD_FILE))
        plane.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd/phashjobs.phashfleet.io")
        plane.kubectl("create", "namespace", NAMESPACE)
        with bench_redis() as redis:
            # The workers' collector writes each job's output; the parts go under the bench's own folder.
            env = {
                **fleet_env(redis, roots=[data]),
                "PHASHFLEET_OUTPUT_ROOTS": str(work / "out"),
                "PHASHFLEET_RESULT_STORE": str(work / "results"),
            }
            workers = start_process(
                "latency-workers",
                worker_argv(args.workers),
                env=env,
                log_dir=logs,
            )
            operator = OperatorProcess(
                "latency-operator",
                plane.kubeconfig,
                logs,
                namespace=NAMESPACE,
                env={
                    **env,
                    "PHASHFLEET_AUTOSCALING": "none",
                    "PHASHFLEET_WORKER_NAMESPACE": NAMESPACE,
                    "PHASHFLEET_OUTPUT_ROOTS": str(work / "out"),
                },
            )
            operator.start()
            try:
                wait_for(lambda: operator_healthy(operator), timeout=60, what="the operator's /healthz")
                watch = JobWatch(plane.api_client(), NAMESPACE)
                bench = Bench(plane, watch, work, operator)
                # Warm-up (not counted): every worker process has started its hashing child.
                bench.at_once(one_file[: args.warmup], args.concurrency)
                workers.check_alive()
                rest = one_file[args.warmup :]
                sequential = bench.one_after_another(rest[: args.jobs])
                parallel = bench.at_once(rest[args.jobs :], args.concurrency)
                big_row = bench.big_job(big, args.big_files)
                watch.stop()
            finally:
                operator.stop()
                workers.stop()
    finally:
        plane.stop()
        shutil.rmtree(work, ignore_errors=True)
    rows = [
        summary("one after another", sequential),
        summary(f"{args.concurrency} at once", parallel),
    ]
    return {"rows": rows, "big_job": big_row, "jobs": {"sequential": sequential, "at_once": parallel}}


def main(argv: list[str] | None = None) -> int:
    """Parse options, run, print the tables, write JSON when asked."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=50, help="one-file jobs per mode (default 50)")
    parser.add_argument("--concurrency", type=int, default=10, help="jobs created together (default 10)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--warmup", type=int, default=10, help="one-file jobs run first, not counted (default 10)")
    parser.add_argument("--image-size", type=int, default=512, help="side of each one-file job's PNG (default 512)")
    parser.add_argument("--big-files", type=int, default=5000, help="files of the big job (default 5000)")
    add_common_args(parser)
    args = parser.parse_args(argv)
    if args.small:
        args.jobs, args.concurrency, args.warmup, args.big_files = 6, 3, 3, 300
    stop_cleanly_on_sigterm()
    info = machine()
    results = run(args)
    print_table(
        f"latency: one-file PhashJobs, create -> Succeeded (hash in spec.output), {args.workers} warm worker processes",
        results["rows"],
        ["mode", "jobs", "p50_s", "p95_s", "max_s", "pending_seen_p50_s", "running_seen_p50_s"],
    )
    print_table(
        "a big job's status writes (phashfleet_status_writes_total over create -> Succeeded)",
        [results["big_job"]],
        ["files", "seconds", "status_writes", "status_writes_per_s", "operator_cpu_s"],
    )
    print(f"\n{info['date']}, {info['cores']} cores ({info['cpu']}); times are client-side, from the apiserver watch")
    report(
        "latency",
        {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        {k: v for k, v in results.items() if k != "jobs"} | {"jobs": results["jobs"]},
        args.json,
        info,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
