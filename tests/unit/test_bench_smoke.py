"""The benchmark scripts bench/peers.py, fleet.py, scale.py and latency.py run end to end on tiny sizes (`--small`).

Not timed tests: they prove each script starts its real processes, finishes, prints its table
and writes its JSON. The three run at the same time (they are mostly waiting on their worker
processes) to keep the suite short.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness import tools
from harness.ci import missing as report_missing

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ("peers", "fleet", "scale")
#: Modules of the `bench` extra the scripts import.
BENCH_MODULES = ("celery", "huey", "taskiq", "taskiq_redis", "matplotlib")
TIMEOUT = 240
#: The two hash functions a peer's task calls, as bench/peers.py labels them.
HASH_LABELS = ("imagehash (full decode)", "ours (fast path)")


def _require_bench_tools() -> None:
    missing = [m for m in BENCH_MODULES if importlib.util.find_spec(m) is None]
    for tool in ("redis-server", "etcd", "kube-apiserver", "kubectl"):  # scale.py runs the real control plane
        try:
            tools.find(tool)
        except (tools.ToolMissing, OSError) as exc:
            missing.append(f"{tool} ({exc})")
    if missing:
        report_missing(f"missing for the benchmarks: {', '.join(missing)} (pip install -e '.[bench]')")


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, tuple[subprocess.CompletedProcess, dict]]:
    """Start all three scripts with --small at once; return each one's finished process and JSON."""
    _require_bench_tools()
    out = tmp_path_factory.mktemp("bench")
    procs = {}
    for name in SCRIPTS:
        argv = [
            sys.executable,
            str(ROOT / "bench" / f"{name}.py"),
            "--small",
            "--json",
            str(out / f"{name}.json"),
            "--out",
            str(out / name),
        ]
        procs[name] = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    done = {}
    try:
        for name, proc in procs.items():
            stdout, stderr = proc.communicate(timeout=TIMEOUT)
            doc = json.loads((out / f"{name}.json").read_text()) if proc.returncode == 0 else {}
            done[name] = (subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr), doc)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.terminate()  # the scripts stop their Redis and workers on SIGTERM
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
    return done


def _ok(runs, name: str) -> tuple[str, dict]:
    result, doc = runs[name]
    assert result.returncode == 0, f"{name}.py failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    assert doc["benchmark"] == name and doc["machine"]["cores"] >= 1 and "--small" in doc["command"]
    return result.stdout, doc["results"]


def test_peers_compares_every_system_on_both_corpora(runs) -> None:
    stdout, results = _ok(runs, "peers")
    assert "ours / best peer" in stdout
    for table in results["tables"].values():
        rows = {(row["system"], row["hash"]): row for row in table}
        ideal = "ideal: 2 processes side by side"
        # Every peer twice: calling imagehash (as a user gets it) and our fast hash (the queue design alone).
        assert set(rows) == {
            *((name, hashed_by) for name in (ideal, "celery", "huey", "taskiq") for hashed_by in HASH_LABELS),
            ("phash-fleet", "ours (fast path)"),
        }
        assert all(row["images_per_s"] > 0 and row["x_ideal_same_hash"] > 0 for row in table)
        # The ideals are measured with 2 processes at once, not a one-process rate times 2.
        assert all(rows[(ideal, h)]["ideal_seconds_before"] > 0 for h in HASH_LABELS)
        # The imagehash peers call imagehash itself, so their hashes match the reference loop's exactly.
        peers = [rows[(name, "imagehash (full decode)")] for name in ("celery", "huey", "taskiq")]
        assert all(row["identical_to_imagehash"] == 1.0 for row in peers)
    comparisons = {(s["corpus"], s["comparison"]) for s in results["summary"]}
    assert len(comparisons) == 2 * len(results["tables"])
    assert {c for _, c in comparisons} == {"the system as a user gets it", "the queue design alone"}
    assert all(s["ours_over_best_peer"] > 0 for s in results["summary"])


def test_fleet_reports_efficiency_per_worker_count_and_plots(runs) -> None:
    stdout, results = _ok(runs, "fleet")
    assert "fleet efficiency" in stdout
    assert [row["workers"] for row in results["rows"]] == [1, 2]
    assert all(row["efficiency"] > 0 and row["cpu_efficiency"] > 0 and row["startup_s"] > 0 for row in results["rows"])
    # The ideal of each W is measured with W processes side by side, not a one-process rate times W.
    assert {ideal["processes"] for ideal in results["ideals"].values()} == {1, 2}
    assert Path(results["plot"]).stat().st_size > 0


def test_scale_runs_the_real_operator_on_every_size(runs) -> None:
    stdout, results = _ok(runs, "scale")
    assert "run by the real operator" in stdout
    rows = results["rows"]
    assert [row["files"] for row in rows] == [200, 2000] and all(row["measured"] == "measured" for row in rows)
    for row in rows:
        assert row["ok"] + row["failed"] + row["skipped"] == row["files"]
        # Counted on the apiserver's watch: the job's status changed at least from its first phase to Succeeded.
        assert row["modified_events"] >= row["status_changes"] >= 2
        assert row["events"][-1][3] == "Succeeded" and row["seconds"] > 0
        assert row["operator_peak_mb"] > 0 and row["redis_peak_mb"] > 0 and row["output_mb"] > 0
    assert Path(results["plot"]).stat().st_size > 0


def test_latency_times_one_file_jobs_one_after_another_and_together(tmp_path) -> None:
    """bench/latency.py on the real control plane: both modes' figures, every job's hash, the big job's writes.

    Its latencies are printed, not asserted (they move with the machine's load).
    """
    missing = []
    for tool in ("etcd", "kube-apiserver", "kubectl", "redis-server"):
        try:
            tools.find(tool)
        except (tools.ToolMissing, OSError) as exc:
            missing.append(f"{tool} ({exc})")
    if missing:
        report_missing(f"missing for bench/latency.py: {', '.join(missing)}")
    out = tmp_path / "latency.json"
    argv = [sys.executable, str(ROOT / "bench" / "latency.py"), "--small", "--json", str(out), "--out", str(tmp_path)]
    result = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 0, f"latency.py failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    assert "latency: one-file PhashJobs" in result.stdout
    doc = json.loads(out.read_text())
    assert doc["benchmark"] == "latency" and "--small" in doc["command"]
    results = doc["results"]
    rows = {row["mode"]: row for row in results["rows"]}
    assert set(rows) == {"one after another", "3 at once"}
    for row in rows.values():
        assert row["jobs"] == 6 and 0 < row["running_seen_p50_s"] < row["p50_s"] <= row["p95_s"] <= row["max_s"]
    jobs = results["jobs"]["sequential"] + results["jobs"]["at_once"]
    assert len({job["hash"] for job in jobs}) == 12  # each job's own image, its hash read from its output
    big = results["big_job"]
    assert big["files"] == 300 and big["status_writes"] >= 2 and big["seconds"] > 0
