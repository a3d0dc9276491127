"""Bench-only helpers: generated corpora, reference loops, CPU and memory probes, arguments, tables and JSON.

Redis, processes and waiting come from the test harness (tests/harness), which this module puts on
the path: the benchmarks start the same redis-server and worker processes the tests do.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import random
import shlex
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
CACHE = ROOT / ".cache" / "bench"
OUT = BENCH / "out"

# The scripts run from a fresh clone too, where `pip install -e .` may not have put worker/ on the path.
for _path in (str(ROOT / "worker"), str(ROOT / "operator"), str(ROOT / "tests"), str(BENCH)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from harness.process import ManagedProcess
from harness.redis_server import RedisServer
from harness.synthetic import photo_like


class BenchError(RuntimeError):
    """A benchmark could not run as asked (a tool missing, a process died, a deadline passed)."""


# --- processes -----------------------------------------------------------------------------------


def worker_argv(processes: int) -> list[str]:
    """`phashfleet worker` with `processes` worker processes and its metrics on a free port, as every bench runs it."""
    return [sys.executable, "-m", "phashfleet.cli", "worker", "--processes", str(processes), "--metrics-port", "0"]


def start_process(
    name: str,
    argv: Sequence[str | Path],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    log_dir: Path | None = None,
) -> ManagedProcess:
    """Start a harness process in its own session, logging to LOG_DIR/NAME.log (a fresh temp folder by default)."""
    log_dir = log_dir or Path(tempfile.mkdtemp(prefix="phashfleet-bench-"))
    proc = ManagedProcess(name, [str(a) for a in argv], log_dir / f"{name}.log", env=env, cwd=cwd)
    proc.start()
    return proc


def pid_of(proc: ManagedProcess) -> int:
    """The pid of a started process."""
    if proc.pid is None:
        raise BenchError(f"{proc.name} was never started")
    return proc.pid


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) used so far by a process and every process it started (Linux /proc).

    A descendant that ended counts through its parent's children-times, so the sum never drops.
    """
    tick = os.sysconf("SC_CLK_TCK")
    parent: dict[int, int] = {}
    used: dict[int, float] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as fh:
                data = fh.read()
        except OSError:
            continue
        fields = data[data.rindex(")") + 2 :].split()
        parent[int(entry.name)] = int(fields[1])
        used[int(entry.name)] = sum(int(f) for f in fields[11:15]) / tick  # utime stime cutime cstime
    tree, frontier = {pid}, [pid]
    children: dict[int, list[int]] = {}
    for child, ppid in parent.items():
        children.setdefault(ppid, []).append(child)
    while frontier:
        for child in children.get(frontier.pop(), []):
            if child not in tree:
                tree.add(child)
                frontier.append(child)
    return sum(used.get(p, 0.0) for p in tree)


def self_cpu_seconds() -> float:
    """CPU seconds this process has used (all its threads)."""
    times = os.times()
    return times.user + times.system


def rss_bytes(pid: int) -> int:
    """Resident memory of a process now (Linux /proc), 0 when it is gone."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


# --- Redis ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def bench_redis() -> Iterator[RedisServer]:
    """The harness's password-protected redis-server, without persistence, in a folder removed at the end."""
    workdir = Path(tempfile.mkdtemp(prefix="phashfleet-bench-redis-"))
    server = RedisServer(workdir, appendonly=False)
    try:
        yield server.start()
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def redis_memory(server: RedisServer) -> dict[str, int]:
    """`used_memory` and `used_memory_peak` from INFO memory, in bytes."""
    info = server.client().info("memory")
    return {"used_memory": int(info["used_memory"]), "used_memory_peak": int(info["used_memory_peak"])}


def fleet_env(redis: RedisServer, roots: Sequence[str | Path] = ()) -> dict[str, str]:
    """The environment `phashfleet worker` and `phashfleet run --redis` read to reach `redis`."""
    env = {**os.environ, "PHASHFLEET_REDIS_URL": redis.url, "PHASHFLEET_REDIS_PASSWORD": redis.password}
    if roots:
        env["PHASHFLEET_ALLOWED_ROOTS"] = os.pathsep.join(str(r) for r in roots)
    python_path = [str(ROOT / "worker"), str(ROOT / "operator"), str(BENCH)]
    env["PYTHONPATH"] = os.pathsep.join(python_path + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return env


# --- corpora -------------------------------------------------------------------------------------


def _make_base(path: Path, width: int, height: int, seed: int) -> None:
    tmp = path.with_suffix(f".{os.getpid()}.tmp")  # two scripts may draw the same base at once
    photo_like(width, height, seed).save(tmp, "JPEG", quality=97)
    os.replace(tmp, path)


def photo_corpus(count: int, width: int, height: int, *, quality: int = 90, bases: int = 4, seed: int = 7) -> Path:
    """A folder of exactly `count` distinct photo-like JPEGs of `width` x `height` under .cache/bench.

    Made once, then reused. Drawing a photo-like image is slow at 12 MP, so a few larger base
    images are drawn once and every file is a different crop of one of them, flipped one of four
    ways and encoded afresh: each file has its own bytes and hash, and decodes like a photo.
    """
    from PIL import Image

    folder = CACHE / f"photos-{width}x{height}-q{quality}-s{seed}-n{count}"
    paths = [folder / f"img{i:05d}.jpg" for i in range(count)]
    missing = [i for i, p in enumerate(paths) if not p.exists()]
    if not missing:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    bases = max(1, min(bases, count))
    pad = max(8, width // 40)
    base_dir = CACHE / f"bases-{width + pad}x{height + pad}-s{seed}"
    base_dir.mkdir(parents=True, exist_ok=True)
    base_paths = [base_dir / f"base{k}.jpg" for k in range(bases)]
    todo = [(p, width + pad, height + pad, seed * 1000 + k) for k, p in enumerate(base_paths) if not p.exists()]
    if todo:
        print(f"drawing {len(todo)} base image(s) of {width + pad}x{height + pad} (once)...", file=sys.stderr)
        with ProcessPoolExecutor(max_workers=min(len(todo), os.cpu_count() or 1)) as pool:
            list(pool.map(_make_base, *zip(*todo, strict=False)))
    print(f"writing {len(missing)} {width}x{height} JPEGs to {folder.relative_to(ROOT)} (once)...", file=sys.stderr)
    flips = [None, Image.Transpose.FLIP_LEFT_RIGHT, Image.Transpose.FLIP_TOP_BOTTOM, Image.Transpose.ROTATE_180]
    loaded: dict[int, Image.Image] = {}
    for i in missing:
        k = i % bases
        if k not in loaded:
            loaded[k] = Image.open(base_paths[k]).convert("RGB")
        rng = random.Random(seed * 1_000_003 + i)
        x, y = rng.randrange(pad + 1), rng.randrange(pad + 1)
        img = loaded[k].crop((x, y, x + width, y + height))
        flip = flips[(i // bases) % len(flips)]
        if flip is not None:
            img = img.transpose(flip)
        tmp = paths[i].with_suffix(f".{os.getpid()}.tmp")
        img.save(tmp, "JPEG", quality=quality)
        os.replace(tmp, paths[i])
    return folder


def corpus_files(folder: Path) -> list[Path]:
    """The JPEGs of a corpus folder, sorted."""
    return sorted(folder.glob("*.jpg"))


# --- reference loops (the ideals) -------------------------------------------------------------

#: What a reference loop calls per file: imagehash as users call it, or our fast path in-process.
LOOP_METHODS = ("imagehash", "fast")


def our_settings(roots: Sequence[str | Path]) -> Any:
    """The hashing Settings a PhashJob with the CRD's defaults gets (phash, hashSize 8, fast path)."""
    from phashfleet.hashing import Settings
    from phashfleet.job.spec import parse_spec

    spec = parse_spec({"source": {"uri": f"file://{Path(next(iter(roots))).resolve()}"}})
    return Settings.from_job(spec.hash_settings(), tuple(str(r) for r in roots))


def _hasher(method: str, roots: Sequence[str]) -> Callable[[Sequence[str]], list[str]]:
    """A function that hashes a list of paths one after the other, by `method`."""
    if method == "imagehash":
        import imagehash
        from PIL import Image

        return lambda refs: [str(imagehash.phash(Image.open(ref))) for ref in refs]
    if method not in ("fast", "hash_many"):
        raise ValueError(f"unknown loop method {method!r}")
    from phashfleet.hashing import hash_many, hash_ref

    settings = our_settings(roots)

    def ours(refs: Sequence[str]) -> list[str]:
        records = list(hash_many(refs, settings)) if method == "hash_many" else [hash_ref(r, settings) for r in refs]
        bad = [r for r in records if r["status"] != "ok"]
        if bad:
            raise BenchError(f"our hashing failed on {len(bad)} file(s), e.g. {bad[0]}")
        return [str(r["hash"]) for r in records]

    return ours


def _loop_share(method: str, refs: list[str], roots: list[str], barrier: Any, results: Any) -> None:
    """One reference process: warm up, wait for the others, hash its share, report its clock and CPU."""
    try:
        run = _hasher(method, roots)
        run(refs[:1])  # imports, first-call set-up and (hash_many) the child process: not part of the loop
        barrier.wait(timeout=300)
        cpu, start = time.process_time(), time.monotonic()
        hashes = run(refs)
        results.put((start, time.monotonic(), time.process_time() - cpu, dict(zip(refs, hashes, strict=True)), ""))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which raises it there
        results.put((0.0, 0.0, 0.0, {}, f"{type(exc).__name__}: {exc}"))


def side_by_side(
    paths: Sequence[Path], workers: int, method: str, roots: Sequence[str | Path], *, timeout: float = 3600
) -> dict[str, Any]:
    """Hash `paths` with `workers` plain processes at once (no queue), each a fixed share in a loop.

    Each process warms up first; the clock starts when all are ready and stops when the last one
    is done (CLOCK_MONOTONIC, shared by all processes). Returns wall `seconds`, `images_per_s`,
    `cpu_s` (all processes) and `hashes` (path -> hex). `method` is one of LOOP_METHODS, or
    `hash_many` (our public API, which hands each file to a child process).
    """
    import multiprocessing

    refs = [str(p) for p in paths]
    shares = [refs[k::workers] for k in range(workers) if refs[k::workers]]
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(len(shares) + 1), ctx.Queue()
    procs = [
        ctx.Process(target=_loop_share, args=(method, share, [str(r) for r in roots], barrier, results), daemon=True)
        for share in shares
    ]
    for proc in procs:
        proc.start()
    try:
        barrier.wait(timeout=300)
        deadline = time.monotonic() + timeout
        got = []
        while len(got) < len(procs):
            try:
                got.append(results.get(timeout=1.0))
            except Exception as exc:
                if any(p.exitcode not in (None, 0) for p in procs) or time.monotonic() > deadline:
                    raise BenchError(f"a {method} reference process died or overran") from exc
        errors = [g[4] for g in got if g[4]]
        if errors:
            raise BenchError(f"{method} reference loop failed: {errors[0]}")
    finally:
        for proc in procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()
    seconds = max(g[1] for g in got) - min(g[0] for g in got)
    hashes: dict[str, str] = {}
    for g in got:
        hashes.update(g[3])
    return {
        "method": method,
        "processes": len(procs),
        "images": len(refs),
        "seconds": seconds,
        "images_per_s": len(refs) / seconds,
        "cpu_s": sum(g[2] for g in got),
        "hashes": hashes,
    }


def mean_of_runs(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """One reference from a run before and one after the systems: mean seconds (and CPU), both kept."""
    seconds = (before["seconds"] + after["seconds"]) / 2
    return {
        **{k: v for k, v in before.items() if k != "hashes"},
        "seconds": seconds,
        "images_per_s": before["images"] / seconds,
        "cpu_s": (before["cpu_s"] + after["cpu_s"]) / 2,
        "seconds_before": before["seconds"],
        "seconds_after": after["seconds"],
    }


# --- output --------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    """Date, cores, CPU model, OS and Python of this run."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "cores": os.cpu_count(),
        "cpu": model or platform.processor(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "load_average_at_start": list(os.getloadavg()),
    }


def command_line() -> str:
    """The command that ran this script, relative to the repository root when possible."""
    script = Path(sys.argv[0]).resolve()
    with contextlib.suppress(ValueError):
        script = script.relative_to(ROOT)
    return shlex.join(["python", str(script), *sys.argv[1:]])


def stop_cleanly_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit, so a stopped script still stops its Redis and workers on the way out."""

    def handler(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def add_common_args(parser: argparse.ArgumentParser) -> None:
    """`--small` (a tiny run for CI), `--json OUT` and `--out DIR` (plots and process logs)."""
    parser.add_argument("--small", action="store_true", help="tiny sizes: proves the script works (CI)")
    parser.add_argument("--json", metavar="OUT", type=Path, help="also write the results as JSON to OUT")
    parser.add_argument(
        "--out",
        metavar="DIR",
        type=Path,
        default=OUT,
        help="folder for plots and worker logs (default bench/out, not in git)",
    )


def fmt(value: Any) -> str:
    """A table cell: floats with 3 significant digits (more before the point), None as '-', bools as yes/no."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        return f"{value:.3g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def print_table(title: str, rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    """Print rows as an aligned plain-text table under `title`."""
    cells = [[fmt(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    print(f"\n{title}")
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=False)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(v.rjust(w) if i else v.ljust(w) for i, (v, w) in enumerate(zip(row, widths, strict=False))))


def report(name: str, params: dict[str, Any], results: Any, json_out: Path | None, info: dict | None = None) -> dict:
    """Build the run's JSON document (machine, command, parameters, results) and write it if asked."""
    doc = {
        "benchmark": name,
        "machine": info or machine(),
        "command": command_line(),
        "params": params,
        "results": results,
    }
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(doc, indent=2, default=str) + "\n")
        print(f"\nwrote {json_out}")
    return doc


def save_plot(fig, out: Path, name: str) -> Path:
    """Save a matplotlib figure as OUT/NAME.png and return its path."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.png"
    fig.savefig(path, dpi=120, bbox_inches="tight")
    print(f"plot: {path}")
    return path
