"""phash-fleet against one-task-per-image queues (Celery, Huey, Taskiq on Redis): same files, same Redis.

Every system gets the same number of worker processes (W, default 2) as real processes on one
throw-away redis-server. The peers run the reference designs, one task per image with results
kept in Redis, twice: with each task calling `imagehash.phash(Image.open(path))` (the system as a
user gets it) and with each task calling our own fast hash, `phashfleet.hashing.hash_ref` with the
Settings our job gets (the same work per image as ours: the queue design alone). Our fleet runs a
PhashJob through `phashfleet.embedded.run.run_with_redis` (the `phashfleet run --redis` path) with
`phashfleet worker` processes started beforehand, so worker start-up is measured on its own (spawn
until warm-up tasks are done) and not inside the throughput. The ideal of each hash function is
measured, not multiplied: W plain processes at once, each hashing its share in a loop, no queue,
wall time from all ready to the last one done, before and after the systems (their mean is used).
The tables give images/s, each row against the ideal of its own hash, and ours against the best
peer for each of the two peer hashes.

    python bench/peers.py                          # 200 x 12 MP and 2,000 x 1.3 MP JPEGs, W=2
    python bench/peers.py --workers 2 --json bench/out/peers.json
    python bench/peers.py --small                  # seconds; what CI runs

Needs `pip install -e '.[bench]'` and `redis-server`.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    BENCH,
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
    self_cpu_seconds,
    side_by_side,
    start_process,
    stop_cleanly_on_sigterm,
    tree_cpu_seconds,
    worker_argv,
)
from harness.process import ManagedProcess
from harness.redis_server import RedisServer

#: name -> (width, height) of the two photo corpora of the issue.
CORPORA = {"12MP": (4000, 3000), "1.3MP": (1280, 1024)}
SMALL_CORPORA = {"small-A": (320, 240), "small-B": (160, 120)}
#: Seconds between checks of a run's deadline and its workers while waiting for results.
CHECK = 1.0
#: The hash a peer's task calls -> its label in the tables: imagehash as a user calls it (the
#: system as a user gets it), or our own fast hash (the same work as ours: the queue design alone).
HASHES = {"imagehash": "imagehash (full decode)", "fast": "ours (fast path)"}


class System:
    """A set of worker processes on the bench Redis, and a client that pushes a corpus through them."""

    name = ""
    design = ""
    #: Seconds a graceful stop may take before the workers are killed.
    stop_timeout = 10.0

    def __init__(self, redis: RedisServer, workers: int, log_dir: Path) -> None:
        self.redis = redis
        self.workers = workers
        self.log_dir = log_dir
        self.proc: ManagedProcess | None = None

    def env(self) -> dict[str, str]:
        """The environment of the worker processes."""
        return {**fleet_env(self.redis, roots=[CACHE]), "BENCH_REDIS_URL": self.redis.url_with_password}

    def argv(self) -> list[str]:
        """The command that starts W worker processes."""
        raise NotImplementedError

    #: The hashes this system's tasks can call (keys of HASHES).
    hashes: tuple[str, ...] = tuple(HASHES)

    def start(self, warm: list[Path], timeout: float) -> float:
        """Start the workers and hash `warm` with each of its hashes; return seconds from spawn until done."""
        os.environ.update({k: v for k, v in self.env().items() if k.startswith(("BENCH_", "PHASHFLEET_"))})
        started = time.monotonic()
        self.proc = start_process(self.name, self.argv(), env=self.env(), cwd=BENCH, log_dir=self.log_dir)
        for hashed_by in self.hashes:
            self.hash_all(warm, time.monotonic() + timeout, hashed_by)
        return time.monotonic() - started

    def hash_all(self, files: list[Path], deadline: float, hashed_by: str = "imagehash") -> dict[str, str]:
        """Push every file through the workers (tasks calling `hashed_by`) and return path -> hash."""
        raise NotImplementedError

    def task_name(self, hashed_by: str) -> str:
        """The peer app's task that calls `hashed_by`."""
        return {"imagehash": "phash", "fast": "phash_fast"}[hashed_by]

    def alive(self) -> None:
        """Raise when the workers died."""
        if self.proc is None:
            raise BenchError(f"{self.name}: not started")
        self.proc.check_alive()

    def wait(self, get: Callable[[float], Any], not_ready: tuple[type[BaseException], ...], deadline: float) -> Any:
        """Call `get(timeout)` until it answers, checking the workers and the deadline in between."""
        while True:
            try:
                return get(CHECK)
            except not_ready:
                self.alive()
                if time.monotonic() > deadline:
                    raise BenchError(f"{self.name}: results did not come back in time") from None

    def stop(self) -> None:
        """Stop the workers."""
        if self.proc:
            self.proc.stop(self.stop_timeout)


class CeleryPeer(System):
    """Celery 5 on Redis, prefork pool of W processes."""

    name, design = "celery", "Celery, Redis broker + backend, 1 task/image"

    def argv(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "peerapps.celery_app",
            "worker",
            "--pool",
            "prefork",
            "--concurrency",
            str(self.workers),
            "--loglevel",
            "WARNING",
        ]

    def hash_all(self, files: list[Path], deadline: float, hashed_by: str = "imagehash") -> dict[str, str]:
        from celery.exceptions import TimeoutError as CeleryTimeout

        task = getattr(importlib.import_module("peerapps.celery_app"), self.task_name(hashed_by))
        pending = [(str(f), task.delay(str(f))) for f in files]
        return {
            path: self.wait(lambda t, r=res: r.get(timeout=t, interval=0.01), (CeleryTimeout,), deadline)
            for path, res in pending
        }


class HueyPeer(System):
    """Huey on Redis, W worker processes."""

    name, design = "huey", "Huey, Redis storage, 1 task/image"

    def argv(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "huey.bin.huey_consumer",
            "peerapps.huey_app.huey",
            "-w",
            str(self.workers),
            "-k",
            "process",
            "-q",
        ]

    def hash_all(self, files: list[Path], deadline: float, hashed_by: str = "imagehash") -> dict[str, str]:
        from huey.exceptions import ResultTimeout

        task = getattr(importlib.import_module("peerapps.huey_app"), self.task_name(hashed_by))
        pending = [(str(f), task(str(f))) for f in files]
        return {
            path: self.wait(
                lambda t, r=res: r.get(blocking=True, timeout=t, backoff=1.0, max_delay=0.01),
                (ResultTimeout,),
                deadline,
            )
            for path, res in pending
        }


class TaskiqPeer(System):
    """Taskiq with taskiq-redis's list-queue broker and Redis result backend, W worker processes."""

    name, design = "taskiq", "Taskiq + taskiq-redis, 1 task/image"
    # Its workers stop at once on SIGTERM, but its main process stays until killed.
    stop_timeout = 3.0

    def argv(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "taskiq",
            "worker",
            "peerapps.taskiq_app:broker",
            "--workers",
            str(self.workers),
            "--log-level",
            "WARNING",
        ]

    def hash_all(self, files: list[Path], deadline: float, hashed_by: str = "imagehash") -> dict[str, str]:
        return asyncio.run(self._hash_all(files, deadline, hashed_by))

    async def _hash_all(self, files: list[Path], deadline: float, hashed_by: str) -> dict[str, str]:
        from taskiq.exceptions import TaskiqResultTimeoutError

        app = importlib.import_module("peerapps.taskiq_app")
        task = getattr(app, self.task_name(hashed_by))
        await app.broker.startup()
        try:
            pending = [(str(f), await task.kiq(str(f))) for f in files]
            out = {}
            for path, task in pending:
                while True:
                    try:
                        result = await task.wait_result(check_interval=0.01, timeout=CHECK)
                        break
                    except TaskiqResultTimeoutError:
                        self.alive()
                        if time.monotonic() > deadline:
                            raise BenchError(f"{self.name}: results did not come back in time") from None
                if result.is_err:
                    raise BenchError(f"{self.name}: task failed: {result.error}")
                out[path] = result.return_value
            return out
        finally:
            await app.broker.shutdown()


class Fleet(System):
    """phash-fleet: `phashfleet worker --processes W`, a PhashJob driven by `run_with_redis`."""

    name, design = "phash-fleet", "phash-fleet, batches on Dramatiq/Redis, fast path"
    hashes = ("fast",)

    def __init__(self, *args: Any, batch_size: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.batch_size = batch_size
        self.last_batch_size = 0

    def argv(self) -> list[str]:
        return worker_argv(self.workers)

    def hash_all(self, files: list[Path], deadline: float, hashed_by: str = "fast") -> dict[str, str]:
        if hashed_by != "fast":
            raise BenchError(f"{self.name} hashes by its own fast path only, not {hashed_by}")
        from phashfleet.embedded.run import run_with_redis
        from phashfleet.job.spec import parse_spec
        from phashfleet.state import result_store
        from phashfleet.state.redis_store import RedisJobStore
        from phashfleet.worker.broker import redis_client

        folder = files[0].parent
        # Enough batches for every worker to get several, as one would size a job of big photos.
        batch = self.batch_size or max(1, min(64, len(files) // (self.workers * 4)))
        self.last_batch_size = batch
        spec = parse_spec(
            {
                "source": {"uri": f"file://{folder}", "include": ["*.jpg"]},
                "batchSize": batch,
                "ttlSecondsAfterFinished": 600,
            }
        )
        job_id = f"bench.peers.{uuid.uuid4().hex[:8]}"

        def guard(done: int, total: int, rate: float) -> None:
            self.alive()
            if time.monotonic() > deadline:
                raise BenchError(f"{self.name}: job not done in time ({done}/{total})")

        result = run_with_redis(
            spec, job_id, (str(folder),), self.redis.url, jobs=self.workers, progress=guard, start_workers=False
        )
        if not result.ok or result.status.get("succeeded") != len(files):
            raise BenchError(f"{self.name}: job ended {result.status}")
        store = RedisJobStore(redis_client(self.redis.url, self.redis.password))
        parts = result_store.from_env().iter_records(job_id, store.snapshot(job_id).epoch)
        return {r["path"]: r["hash"] for r in parts}


PEERS = (CeleryPeer, HueyPeer, TaskiqPeer)


def cpu_now(system: System, redis: RedisServer) -> tuple[float, float, float]:
    """CPU seconds so far of the workers (with every process they started), of Redis, and of this client."""
    if system.proc is None or redis.proc is None:
        raise BenchError("cpu_now needs the workers and Redis running")
    return (tree_cpu_seconds(pid_of(system.proc)), tree_cpu_seconds(pid_of(redis.proc)), self_cpu_seconds())


def ideal_row(name: str, hashed_by: str, workers: int, before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """The reference row of one hash: W plain processes side by side, no queue (mean of before and after)."""
    ref = mean_of_runs(before, after)
    return {
        "system": f"ideal: {workers} processes side by side",
        "design": f"{workers} plain processes at once, each a share in a loop, no queue",
        "hash": HASHES[hashed_by],
        "images": ref["images"],
        "seconds": ref["seconds"],
        "images_per_s": ref["images_per_s"],
        "startup_s": None,
        "identical_to_imagehash": None,
        "ideal_seconds_before": ref["seconds_before"],
        "ideal_seconds_after": ref["seconds_after"],
        "cpu_ms_per_image": 1000 * ref["cpu_s"] / ref["images"],
        "worker_busy": ref["cpu_s"] / (ref["seconds"] * workers),
    }


def run_system(
    system: System, redis: RedisServer, paths: list[Path], hashed_by: str, budget: float, reference: dict[str, str]
) -> dict[str, Any]:
    """Push one corpus through a started system with tasks calling `hashed_by`; return its row."""
    cpu_before = cpu_now(system, redis)
    started = time.monotonic()
    hashes = system.hash_all(paths, started + budget, hashed_by)
    seconds = time.monotonic() - started
    used = (b - a for a, b in zip(cpu_before, cpu_now(system, redis), strict=True))
    cpu = dict(zip(("worker_cpu_s", "redis_cpu_s", "client_cpu_s"), used, strict=True))
    if len(hashes) != len(paths):
        raise BenchError(f"{system.name}: {len(hashes)} results for {len(paths)} images")
    return {
        "system": system.name,
        "design": system.design,
        "hash": HASHES[hashed_by],
        "images": len(paths),
        "seconds": seconds,
        "images_per_s": len(paths) / seconds,
        "identical_to_imagehash": sum(hashes.get(p) == h for p, h in reference.items()) / len(paths),
        **cpu,
        "cpu_ms_per_image": 1000 * sum(cpu.values()) / len(paths),
        "worker_busy": cpu["worker_cpu_s"] / (seconds * system.workers),
    }


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """The ideals, every peer with both hashes and our fleet over both corpora, the ideals again."""
    corpora = SMALL_CORPORA if args.small else CORPORA
    counts = {"12MP": args.images_12mp, "1.3MP": args.images_1mp} if not args.small else dict.fromkeys(corpora, 8)
    folders = {name: photo_corpus(counts[name], w, h) for name, (w, h) in corpora.items()}
    warm_folder = photo_corpus(2 * args.workers, 64, 48)
    files = {name: corpus_files(folder) for name, folder in folders.items()}
    warm = corpus_files(warm_folder)

    def ideals() -> dict[tuple[str, str], dict[str, Any]]:
        print(f"ideals: {args.workers} plain processes side by side...", file=sys.stderr)
        return {
            (name, hashed_by): side_by_side(paths, args.workers, hashed_by, [CACHE])
            for name, paths in files.items()
            for hashed_by in HASHES
        }

    before = ideals()
    reference = {name: before[(name, "imagehash")]["hashes"] for name in files}
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in corpora}
    systems = [cls for cls in PEERS if cls.name in args.systems] + ([Fleet] if "phash-fleet" in args.systems else [])
    with bench_redis() as redis:
        for cls in systems:
            redis.client().flushall()
            system = (
                Fleet(redis, args.workers, args.out / "logs", batch_size=args.batch_size)
                if cls is Fleet
                else cls(redis, args.workers, args.out / "logs")
            )
            try:
                print(f"{system.name}: starting {args.workers} worker processes...", file=sys.stderr)
                startup = system.start(warm, args.startup_timeout)
                for name, paths in files.items():
                    # Budget: 30 s plus 20x what the imagehash ideal needs.
                    budget = 30 + 20 * before[(name, "imagehash")]["seconds"]
                    for hashed_by in system.hashes:
                        row = run_system(system, redis, paths, hashed_by, budget, reference[name])
                        row["startup_s"] = startup
                        if isinstance(system, Fleet):
                            row["batch_size"] = system.last_batch_size
                        rows[name].append(row)
                        print(f"  {name}, {hashed_by}: {row['images_per_s']:.1f} images/s", file=sys.stderr)
            finally:
                system.stop()
    # The ideals run again after the systems; the mean of both is the reference, so a change in the
    # machine's load during the run weighs on the reference as on the systems.
    after = ideals()
    for name in files:
        for k, hashed_by in enumerate(HASHES):
            rows[name].insert(
                k, ideal_row(name, hashed_by, args.workers, before[(name, hashed_by)], after[(name, hashed_by)])
            )
        fast_ideal = rows[name][1]
        fast_ideal["identical_to_imagehash"] = sum(
            before[(name, "fast")]["hashes"].get(p) == h for p, h in reference[name].items()
        ) / len(files[name])
        rows[name][0]["identical_to_imagehash"] = 1.0
    return {"tables": rows, "summary": summarize(rows, corpora)}


def summarize(rows: dict[str, list[dict[str, Any]]], corpora: dict[str, tuple[int, int]]) -> list[dict[str, Any]]:
    """Each row against the ideal of its own hash, and ours against the best peer, per corpus and per hash."""
    peer_names = {c.name for c in PEERS}
    summary = []
    for name, table in rows.items():
        ideal = {row["hash"]: row["images_per_s"] for row in table if row["system"].startswith("ideal")}
        for row in table:
            row["x_ideal_same_hash"] = row["images_per_s"] / ideal[row["hash"]]
        ours = next((r for r in table if r["system"] == "phash-fleet"), None)
        for hashed_by, label in HASHES.items():
            peers = [r for r in table if r["system"] in peer_names and r["hash"] == label]
            best = max(peers, key=lambda r: r["images_per_s"]) if peers else None
            summary.append(
                {
                    "corpus": name,
                    "size": "x".join(map(str, corpora[name])),
                    "images": table[0]["images"],
                    "comparison": "the system as a user gets it"
                    if hashed_by == "imagehash"
                    else "the queue design alone",
                    "peers_hash": label,
                    "best_peer": best["system"] if best else None,
                    "best_peer_images_per_s": best["images_per_s"] if best else None,
                    "best_peer_x_ideal": best["x_ideal_same_hash"] if best else None,
                    "ours_images_per_s": ours["images_per_s"] if ours else None,
                    "ours_x_ideal": ours["x_ideal_same_hash"] if ours else None,
                    "ours_over_best_peer": ours["images_per_s"] / best["images_per_s"] if ours and best else None,
                }
            )
    return summary


def main(argv: list[str] | None = None) -> int:
    """Parse options, run, print the tables, write JSON when asked."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", "-w", type=int, default=2, help="worker processes per system (default 2)")
    parser.add_argument("--images-12mp", type=int, default=200, help="12 MP photos (default 200)")
    parser.add_argument("--images-1mp", type=int, default=2000, help="~1.3 MP photos (default 2000)")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="our job's batchSize (default: enough batches for 4 per worker, at most 64)",
    )
    parser.add_argument(
        "--systems",
        default="celery,huey,taskiq,phash-fleet",
        help="comma-separated subset of celery,huey,taskiq,phash-fleet",
    )
    parser.add_argument("--startup-timeout", type=float, default=120.0, help="seconds a system may take to start")
    add_common_args(parser)
    args = parser.parse_args(argv)
    args.systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    stop_cleanly_on_sigterm()
    info = machine()
    results = measure(args)
    for name, table in results["tables"].items():
        print_table(
            f"{name} photos, {args.workers} worker processes each (same files, same Redis)",
            table,
            [
                "system",
                "hash",
                "images",
                "seconds",
                "images_per_s",
                "x_ideal_same_hash",
                "cpu_ms_per_image",
                "worker_busy",
                "startup_s",
                "identical_to_imagehash",
            ],
        )
    print_table(
        "ours / best peer: with the peers calling imagehash (the system as a user gets it) and calling "
        "our fast hash (the queue design alone)",
        results["summary"],
        [
            "corpus",
            "images",
            "comparison",
            "best_peer",
            "best_peer_images_per_s",
            "best_peer_x_ideal",
            "ours_images_per_s",
            "ours_x_ideal",
            "ours_over_best_peer",
        ],
    )
    print(
        f"\n{info['date']}, {info['cores']} cores ({info['cpu']}); ideal: W plain processes side by side, "
        "no queue, each hashing its share, wall time from all ready to the last done (mean of a run before "
        "and one after the systems); x_ideal_same_hash: images/s over the ideal of the same hash function; "
        "images/s exclude worker start-up (startup_s: spawn until warm-up tasks are done); "
        "cpu_ms_per_image: workers + Redis + client/driver; worker_busy: workers' CPU / (seconds x W)"
    )
    report(
        "peers", {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}, results, args.json, info
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
