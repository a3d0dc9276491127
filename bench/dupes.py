"""Near-duplicate grouping benchmark: phashfleet vs a BK-tree and a brute-force popcount scan, same data.

Generates N random 64-bit hashes with planted near-duplicate pairs (distance 1..6, or up to
--max-distance when smaller), groups them with each method and prints time, recall of the
planted pairs and the ratio to phashfleet. Every row says whether its time was measured or
extrapolated (column `measured/extrapolated`); a ratio is measured only when both times are.

- phashfleet: measured at N, and at the BK-tree's sample size for a measured ratio there; its peak
  allocation (tracemalloc, in a separate untimed run, the input list excluded) is reported too.
- BK-tree (pybktree, the `bench` extra): built over a subsample of --bktree-n hashes, every member
  queried, timed: measured. Then extrapolated to N as n^p, p fitted on the distance computations
  counted at a quarter and a half of the subsample (a query visits a slowly shrinking share of a
  larger tree, so this tends to overstate).
- Brute-force popcount scan (imagededup's brute-force method, vectorised with numpy): a sample of
  queries each compared with all N hashes, measured; the total at N is per-query time x N.

    python bench/dupes.py                       # 1,000,000 hashes, distance 6
    python bench/dupes.py --other-distances 0,3,8   # and phashfleet alone at those distances
    python bench/dupes.py --small --json out.json   # 20,000 hashes: proves it works (CI)
    python bench/dupes.py --sizes 1000000,10000000  # phashfleet alone per size, each in a child process

`--sizes` runs only phashfleet, each size in a fresh child process, twice: grouping the uint64
hashes (`find_groups`) and streaming them as (path, hex) records (`group_records(...,
keep_paths=False)`, hex parsing included). Per run: wall and CPU seconds of the grouping, the
child's peak RSS (VmHWM, the whole process: interpreter, numpy, input, everything), the peak RSS
of the largest search process it forked (shared pages counted in both), its RSS before grouping
and the planted-pair recall. CPU seconds include the forked processes'. tracemalloc is not used
there (it would slow the run).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import resource
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import add_common_args, fmt, machine, print_table, report
from phashfleet.dupes import find_groups, group_records
from phashfleet.dupes.bits import popcount
from phashfleet.dupes.components import DisjointSets

PLANTED_MAX = 6


def make_data(n: int, pairs: int, max_distance: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random uint64 hashes with ``pairs`` planted (i, j) pairs at distances cycling 1..min(6, max_distance)."""
    rng = np.random.default_rng(seed)
    hashes = rng.integers(0, 2**64 - 1, size=n, dtype=np.uint64, endpoint=True)
    chosen = rng.choice(n, size=(pairs, 2), replace=False)
    top = max(1, min(PLANTED_MAX, max_distance))
    for k, (i, j) in enumerate(chosen):
        flips = rng.choice(64, size=1 + k % top, replace=False)
        hashes[j] = hashes[i] ^ np.uint64(sum(1 << int(bit) for bit in flips))
    return hashes, chosen


def recall(labels: np.ndarray, pairs: np.ndarray) -> float:
    """Share of planted pairs whose two members got the same group."""
    if not len(pairs):
        return 1.0
    a, b = labels[pairs[:, 0]], labels[pairs[:, 1]]
    return float(np.mean((a == b) & (a >= 0)))


def subsample(n: int, pairs: np.ndarray, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of ``size`` hashes holding the same share of planted pairs, and those pairs re-indexed."""
    rng = np.random.default_rng(seed)
    keep_pairs = pairs[: max(1, round(len(pairs) * size / n))] if len(pairs) else pairs
    planted = np.zeros(n, dtype=bool)
    planted[pairs.reshape(-1)] = True
    others = rng.choice(np.flatnonzero(~planted), size=max(0, size - keep_pairs.size), replace=False)
    index = np.concatenate([keep_pairs.reshape(-1), others])
    where = np.full(n, -1, dtype=np.int64)
    where[index] = np.arange(index.size)
    return index, where[keep_pairs]


def run_ours(hashes: np.ndarray, max_distance: int, processes: int | None) -> tuple[float, np.ndarray, str]:
    """Time phashfleet's grouping from hex strings (as records carry them); return seconds, labels, plan."""
    hexes = [format(int(v), "016x") for v in hashes.tolist()]
    start = time.perf_counter()
    groups = find_groups(hexes, max_distance, processes=processes)
    elapsed = time.perf_counter() - start
    plan = groups.plan
    return elapsed, groups.labels, f"{plan.method}, {plan.blocks} blocks, {plan.tables} tables"


def run_bktree(hashes: np.ndarray, max_distance: int) -> tuple[float, np.ndarray]:
    """Build a BK-tree over the hashes, query each one, union the matches; return seconds and labels."""
    import pybktree

    values = hashes.tolist()
    start = time.perf_counter()
    tree = pybktree.BKTree(lambda x, y: (x ^ y).bit_count(), values)
    where: dict[int, int] = {}
    for i, value in enumerate(values):
        where.setdefault(value, i)
    firsts, seconds = [], []
    for i, value in enumerate(values):
        for _, other in tree.find(value, max_distance):
            firsts.append(i)
            seconds.append(where[other])
    elapsed = time.perf_counter() - start
    return elapsed, _labels(len(values), firsts, seconds)


def bktree_comparisons(hashes: np.ndarray, max_distance: int) -> int:
    """Distance computations a BK-tree needs to build over the hashes and query each (not timed)."""
    import pybktree

    calls = 0

    def counted(x: int, y: int) -> int:
        nonlocal calls
        calls += 1
        return (x ^ y).bit_count()

    values = hashes.tolist()
    tree = pybktree.BKTree(counted, values)
    for value in values:
        tree.find(value, max_distance)
    return calls


def run_scan(hashes: np.ndarray, queries: np.ndarray, max_distance: int) -> tuple[float, np.ndarray]:
    """Compare each query hash with all hashes by numpy popcount; return seconds and the matches' labels."""
    firsts, seconds = [], []
    start = time.perf_counter()
    for i in queries.tolist():
        near = np.flatnonzero(popcount(hashes ^ hashes[i]) <= max_distance)
        firsts.extend([i] * near.size)
        seconds.extend(near.tolist())
    elapsed = time.perf_counter() - start
    return elapsed, _labels(hashes.size, firsts, seconds)


def _labels(n: int, firsts: list[int], seconds: list[int]) -> np.ndarray:
    """Component of each index (its smallest member), -1 for singletons."""
    sets = DisjointSets(n)
    sets.union(np.asarray(firsts, dtype=np.int64), np.asarray(seconds, dtype=np.int64))
    roots = sets.compress()
    sizes = np.bincount(roots, minlength=n)
    return np.where(sizes[roots] > 1, roots, -1)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the table and write JSON with --json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="hashes (default 1,000,000; --small: 20,000)")
    parser.add_argument("--max-distance", type=int, default=6, help="Hamming distance (default 6)")
    parser.add_argument("--pairs", type=int, help="planted pairs (default n/100)")
    parser.add_argument(
        "--bktree-n", type=int, default=16_000, help="BK-tree sample, measured (default 16,000; --small: 1000)"
    )
    parser.add_argument("--scan-queries", type=int, default=300, help="brute-force queries timed (default 300)")
    parser.add_argument(
        "--other-distances", default="", help="comma-separated distances to time phashfleet alone at N as well"
    )
    parser.add_argument("--processes", type=int, help="processes for phashfleet (default: CPUs, at most 2)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--sizes", default="", help="comma-separated sizes: phashfleet alone per size, in child processes (no peers)"
    )
    parser.add_argument("--child", choices=["words", "records"], help=argparse.SUPPRESS)  # one --sizes run
    add_common_args(parser)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(one_size(args.child, args.n, args.max_distance, args.pairs, args.seed, args.processes)))
        return 0
    if args.sizes:
        return sweep(args)
    if importlib.util.find_spec("pybktree") is None:
        parser.error("pybktree is not installed: pip install -e '.[bench]'")
    if args.small:
        args.n, args.bktree_n, args.scan_queries = min(args.n, 20_000), min(args.bktree_n, 1000), 100
    args.other_distances = [int(d) for d in str(args.other_distances).split(",") if d.strip()]
    info = machine()
    results = run(args)
    print_table(
        f"near-duplicate grouping: {args.n:,} random 64-bit hashes, {results['planted_pairs']:,} planted pairs, "
        f"max distance {args.max_distance}; {info['cores']} cores ({info['cpu']}), {info['date']}",
        [{**row, "recall": f"{row['recall']:.2%}", "x ours": _ratio(row)} for row in results["rows"]],
        ["method", "n", "seconds", "measured/extrapolated", "recall", "x ours", "note"],
    )
    if results["other_distances"]:
        print_table(
            f"phashfleet alone at other distances, {args.n:,} hashes (all measured)",
            results["other_distances"],
            ["max_distance", "seconds", "peak_mb", "plan"],
        )
    print(
        f"\nphashfleet's grouping of {args.n:,} hashes at distance {args.max_distance}: peak allocation "
        f"{results['ours_peak_mb']:.0f} MB (tracemalloc, untimed run, the input hex list excluded)"
    )
    params = {
        k: getattr(args, k)
        for k in ("n", "max_distance", "pairs", "bktree_n", "scan_queries", "other_distances", "processes", "seed")
    }
    report("dupes", params, results, args.json, info)
    return 0


def _vm_kb(field: str) -> int:
    """A ``/proc/self/status`` memory figure (VmRSS, VmHWM) in kB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(field)


def _records(hashes: np.ndarray, chunk: int = 1 << 16) -> Any:
    """The hashes as ``(path, hex)`` records, generated as they are read (as a result file streams)."""
    for start in range(0, hashes.size, chunk):
        text = hashes[start : start + chunk].astype(">u8").tobytes().hex()
        for k in range(0, len(text), 16):
            yield None, text[k : k + 16]


def _cpu_seconds() -> float:
    """CPU seconds of this process plus its finished children (the forked search processes)."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def one_size(kind: str, n: int, max_distance: int, pairs: int | None, seed: int, processes: int | None) -> dict:
    """Group ``n`` generated hashes once in this process (a --sizes child); time, CPU, RSS and recall."""
    hashes, planted = make_data(n, pairs if pairs is not None else max(1, n // 100), max_distance, seed)
    before = _vm_kb("VmRSS")
    cpu, start = _cpu_seconds(), time.perf_counter()
    if kind == "words":
        groups = find_groups(hashes, max_distance, processes=processes)
        labels, plan = groups.labels, groups.plan
    else:
        result = group_records(_records(hashes), max_distance, keep_paths=False, processes=processes)
        labels, plan = result.labels, result.groups.plan
    elapsed, cpu = time.perf_counter() - start, _cpu_seconds() - cpu
    return {
        "input": kind,
        "n": n,
        "seconds": elapsed,
        "cpu_seconds": cpu,
        "peak_rss_mb": _vm_kb("VmHWM") / 1024,
        # The largest forked search process (its RSS counts the pages it shares with this one too).
        "child_peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
        "rss_before_mb": before / 1024,
        "recall": recall(labels, planted),
        "groups": int(labels.max() + 1) if labels.size else 0,
        "plan": f"{plan.method}, {plan.blocks} blocks, {plan.tables} tables",
    }


def sweep(args: argparse.Namespace) -> int:
    """Run phashfleet alone at each of --sizes, each run in its own child process; print and report."""
    info = machine()
    rows = []
    for n in [int(size) for size in str(args.sizes).split(",") if size.strip()]:
        for kind in ("words", "records"):
            command = [sys.executable, __file__, "--child", kind, "--n", str(n), "--max-distance"]
            command += [str(args.max_distance), "--seed", str(args.seed)]
            command += [] if args.pairs is None else ["--pairs", str(args.pairs)]
            command += [] if args.processes is None else ["--processes", str(args.processes)]
            done = subprocess.run(command, capture_output=True, text=True, check=True, env=os.environ.copy())
            rows.append(json.loads(done.stdout.splitlines()[-1]))
    print_table(
        f"phashfleet alone, max distance {args.max_distance}, one child process per run; {info['cores']} cores "
        f"({info['cpu']}), load average at start {info['load_average_at_start'][0]:.1f}, {info['date']}",
        [{**row, "recall": f"{row['recall']:.2%}"} for row in rows],
        [
            "input",
            "n",
            "seconds",
            "cpu_seconds",
            "peak_rss_mb",
            "child_peak_rss_mb",
            "rss_before_mb",
            "recall",
            "groups",
        ]
        + ["plan"],
    )
    params = {k: getattr(args, k) for k in ("sizes", "max_distance", "pairs", "processes", "seed")}
    report("dupes", params, {"sizes": rows}, args.json, info)
    return 0


def _ratio(row: dict[str, Any]) -> str:
    """The row's time over ours at the same n, marked when either time is extrapolated."""
    return fmt(row["vs_ours"]) + ("" if row["measured/extrapolated"] == "measured" else " (extrapolated)")


def peak_mb(hashes: np.ndarray, max_distance: int, processes: int | None) -> float:
    """MB phashfleet's grouping allocates at its peak (tracemalloc), on top of its input hex strings."""
    hexes = [format(int(v), "016x") for v in hashes.tolist()]
    tracemalloc.start()
    try:
        find_groups(hexes, max_distance, processes=processes)
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def _row(method: str, n: int, seconds: float, measured: bool, recall_: float, note: str = "") -> dict[str, Any]:
    return {
        "method": method,
        "n": n,
        "seconds": seconds,
        "measured/extrapolated": "measured" if measured else "extrapolated",
        "recall": recall_,
        "note": note,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Time the three methods on the same generated hashes; return the rows."""
    n, d = args.n, args.max_distance
    hashes, pairs = make_data(n, args.pairs if args.pairs is not None else max(1, n // 100), d, args.seed)
    ours_at: dict[int, float] = {}

    ours_time, labels, plan = run_ours(hashes, d, args.processes)
    ours_at[n] = ours_time
    rows = [_row("phashfleet (multi-index tables)", n, ours_time, True, recall(labels, pairs), plan)]

    big = min(n, args.bktree_n)
    index, sub_pairs = subsample(n, pairs, big, args.seed)
    if big < n:
        sub_time, sub_ours_labels, sub_plan = run_ours(hashes[index], d, args.processes)
        ours_at[big] = sub_time
        rows.append(
            _row(
                "phashfleet (multi-index tables)",
                big,
                sub_time,
                True,
                recall(sub_ours_labels, sub_pairs),
                f"the BK-tree's sample; {sub_plan}",
            )
        )
    elapsed, sub_labels = run_bktree(hashes[index], d)
    rows.append(_row("BK-tree (pybktree)", big, elapsed, True, recall(sub_labels, sub_pairs)))
    if big < n:
        # Work grows as n^p; p is fitted on counted distance computations (noise-free), at most 2 (all pairs).
        small = max(2, big // 4)
        counts = [bktree_comparisons(hashes[subsample(n, pairs, size, args.seed)[0]], d) for size in (small, big // 2)]
        exponent = min(2.0, math.log(counts[1] / counts[0]) / math.log((big // 2) / small)) if big // 2 > small else 2.0
        rows.append(
            _row(
                "BK-tree (pybktree)",
                n,
                elapsed * (n / big) ** exponent,
                False,
                rows[-1]["recall"],
                f"the {big:,} measured x ({n:,}/{big:,})^{exponent:.2f}; exponent fitted on distance counts at "
                f"{small:,} and {big // 2:,} hashes; recall as measured",
            )
        )

    queries_n = min(n, args.scan_queries)
    queries = np.concatenate([pairs[: max(1, queries_n // 2), 0], np.arange(queries_n)])[:queries_n]
    elapsed, scan_labels = run_scan(hashes, queries, d)
    scan_recall = recall(scan_labels, pairs[np.isin(pairs[:, 0], queries)])
    rows.append(
        _row(
            "brute-force popcount scan (numpy)",
            n,
            elapsed * n / queries_n,
            queries_n == n,
            scan_recall,
            f"{queries_n} queries against all {n:,} hashes took {elapsed:.3g} s (measured), x {n / queries_n:,.0f}"
            if queries_n < n
            else "",
        )
    )
    for row in rows:
        row["vs_ours"] = row["seconds"] / ours_at[row["n"]]

    others = []
    for other in args.other_distances:
        seconds, _, other_plan = run_ours(hashes, other, args.processes)
        others.append(
            {
                "max_distance": other,
                "seconds": seconds,
                "peak_mb": peak_mb(hashes, other, args.processes),
                "plan": other_plan,
            }
        )
    return {
        "planted_pairs": int(len(pairs)),
        "rows": rows,
        "ours_peak_mb": peak_mb(hashes, d, args.processes),
        "other_distances": others,
    }


if __name__ == "__main__":
    sys.exit(main())
