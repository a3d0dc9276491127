"""Shared benchmark helpers: generated corpora, a throw-away Redis, real worker processes, tables and JSON."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import random
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
CACHE = ROOT / ".cache" / "bench"
OUT = BENCH / "out"

# The scripts run from a fresh clone too, where `pip install -e .` may not have put worker/ on the path.
for _path in (str(ROOT / "worker"), str(ROOT / "operator"), str(ROOT / "tests"), str(BENCH)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

T = TypeVar("T")


class BenchError(RuntimeError):
    """A benchmark could not run as asked (a tool missing, a process died, a deadline passed)."""


# --- waiting -------------------------------------------------------------------------------------


def wait_until(check: Callable[[], T], *, timeout: float, interval: float = 0.05, what: str) -> T:
    """Call `check` until it returns something truthy and return it; raise BenchError at the deadline."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = check()
            if value:
                return value
            last = value
        except BenchError:
            raise
        except Exception as exc:  # noqa: BLE001 - a failing probe means "not yet"
            last = exc
        if time.monotonic() >= deadline:
            raise BenchError(f"timed out after {timeout:.0f}s waiting for {what}; last result: {last!r}")
        time.sleep(interval)


# --- processes -----------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Proc:
    """A child process in its own session, so stopping it also stops the processes it forked."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        log_dir: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = [str(a) for a in argv]
        log_dir = log_dir or Path(tempfile.mkdtemp(prefix="phashfleet-bench-"))
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(
            self.argv, env=env, cwd=cwd, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    @property
    def alive(self) -> bool:
        """True while the process runs."""
        return self.popen.poll() is None

    def check_alive(self) -> None:
        """Raise BenchError (with the log's tail) when the process has exited."""
        if not self.alive:
            raise BenchError(f"{self.name} exited with code {self.popen.returncode}:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the process's output."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM the process's group, SIGKILL it if it is still there after `timeout` seconds."""
        try:
            if self.alive:
                os.killpg(self.popen.pid, signal.SIGTERM)
                try:
                    self.popen.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    os.killpg(self.popen.pid, signal.SIGKILL)
                    self.popen.wait(timeout=10)
            # Children that outlived their parent (e.g. a pool whose master was killed) share its group.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
        finally:
            self._log.close()


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


class RedisServer:
    """A password-protected redis-server on a free loopback port, with no persistence; use as a context."""

    def __init__(self, workdir: Path | None = None) -> None:
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="phashfleet-bench-redis-"))
        self.port = free_port()
        self.password = secrets.token_urlsafe(18)
        self.proc: Proc | None = None

    @property
    def url(self) -> str:
        """redis:// URL without the password (phashfleet takes it separately)."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def url_with_password(self) -> str:
        """redis:// URL with the password in it, for clients that take one URL."""
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    def client(self):
        """A redis-py client."""
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, password=self.password, socket_timeout=30)

    def start(self) -> RedisServer:
        """Start redis-server and wait until it answers PING."""
        exe = shutil.which("redis-server")
        if not exe:
            raise BenchError("redis-server is not installed (Debian: apt-get install redis-server)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc = Proc(
            "redis-server",
            [
                exe,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--requirepass",
                self.password,
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
                "--loglevel",
                "warning",
            ],
            log_dir=self.workdir,
        )

        def pings() -> bool:
            self.proc.check_alive()
            return bool(self.client().ping())

        wait_until(pings, timeout=30, what="redis-server PING")
        return self

    def used_memory(self) -> dict[str, int]:
        """`used_memory` and `used_memory_peak` from INFO memory, in bytes."""
        info = self.client().info("memory")
        return {"used_memory": int(info["used_memory"]), "used_memory_peak": int(info["used_memory_peak"])}

    def stop(self) -> None:
        """Stop the server and remove its folder."""
        if self.proc:
            self.proc.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


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
    from harness.synthetic import photo_like

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


# --- reference loops -----------------------------------------------------------------------------


def imagehash_loop(paths: Sequence[Path]) -> tuple[float, float, dict[str, str]]:
    """`imagehash.phash(Image.open(path))` over every path in this process: wall seconds, CPU seconds, hashes."""
    import imagehash
    from PIL import Image

    imagehash.phash(Image.open(paths[0]))  # the first call imports scipy: not part of the loop
    hashes = {}
    cpu, start = time.process_time(), time.perf_counter()
    for path in paths:
        hashes[str(path)] = str(imagehash.phash(Image.open(path)))
    return time.perf_counter() - start, time.process_time() - cpu, hashes


def ours_loop(
    paths: Sequence[Path], roots: Sequence[str | Path], *, exact: bool = False, pooled: bool = False
) -> tuple[float, float]:
    """Wall and CPU seconds one process takes to hash every path with phashfleet's own code, no queue.

    By default `hash_ref` runs in this very process: the per-core limit of our hashing. With
    `pooled`, the public `hash_many` is used, which hands each file to a child process (so a file
    that hangs can be killed at its timeout): still one file at a time, plus that hand-off; the
    CPU seconds are then only this process's share.
    """
    from phashfleet.hashing import Settings, hash_many, hash_ref

    settings = Settings(exact=exact, allowed_roots=tuple(str(r) for r in roots))
    refs = [str(p) for p in paths]
    run = (lambda: list(hash_many(refs, settings))) if pooled else (lambda: [hash_ref(r, settings) for r in refs])
    if pooled:
        list(hash_many(refs[:1], settings))  # starts the child process: not part of the loop
    else:
        hash_ref(refs[0], settings)  # first-call imports are not part of the loop
    cpu, start = time.process_time(), time.perf_counter()
    records = run()
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    bad = [r for r in records if r["status"] != "ok"]
    if bad:
        raise BenchError(f"our hashing failed on {len(bad)} file(s), e.g. {bad[0]}")
    return elapsed, cpu


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
