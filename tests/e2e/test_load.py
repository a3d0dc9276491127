"""Load: 20 jobs of mixed sizes and priorities at once; all exact, high priority first on average."""

from __future__ import annotations

import datetime as dt
import re
import statistics
import urllib.request
from pathlib import Path

from harness.fleet import make_corpus, phash_job
from harness.wait import wait_for

PRIORITIES = ["low", "normal", "high"]


def _when(stamp: str) -> float:
    return dt.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC).timestamp()


def _metric_sum(text: str, name: str, label: str) -> float:
    return sum(float(v) for v in re.findall(rf"^{name}\{{[^}}]*{label}[^}}]*\}} (\S+)$", text, re.M))


def test_twenty_jobs_finish_exact_with_priorities_respected(control_plane, fleet, tmp_path_factory):
    ns = fleet["namespace"]
    corpora = {}
    for size in (2, 4, 8):
        folder = tmp_path_factory.mktemp(f"load-{size}")
        corpora[size] = (folder, make_corpus(folder, photos=size, size=(800, 600), copy_format="jpg"))
    jobs = []
    for i in range(20):
        size = (2, 4, 8)[i % 3]
        priority = PRIORITIES[(i // 3) % 3]
        jobs.append((f"load-{i:02d}", size, priority))
    items = [
        phash_job(
            name, f"file://{corpora[size][0]}", str(fleet["tmp"] / f"{name}.jsonl"), batchSize=2, priority=priority
        )
        for name, size, priority in jobs
    ]
    control_plane.apply({"apiVersion": "v1", "kind": "List", "items": items}, namespace=ns)
    created = {}

    def all_done():
        listed = control_plane.get_json("phj", namespace=ns)["items"]
        for item in listed:
            created[item["metadata"]["name"]] = item["metadata"]["creationTimestamp"]
        phases = [i.get("status", {}).get("phase") for i in listed]
        return len(listed) == 20 and all(p in ("Succeeded", "Failed") for p in phases) and listed

    listed = wait_for(all_done, timeout=600, interval=1, what="20 jobs to finish")
    by_name = {i["metadata"]["name"]: i["status"] for i in listed}
    waits = {p: [] for p in PRIORITIES}
    for name, size, priority in jobs:
        status = by_name[name]
        truth = corpora[size][1]["files"]
        assert status["phase"] == "Succeeded", (name, status)
        assert status["total"] == truth and status["succeeded"] == truth - 2
        waits[priority].append(_when(status["completionTime"]) - _when(created[name]))
    mean = {p: statistics.mean(v) for p, v in waits.items()}
    metrics = urllib.request.urlopen(fleet["operator"].metrics_url, timeout=5).read().decode()
    ticks = _metric_sum(metrics, "phashfleet_reconcile_duration_seconds_count", 'handler="tick"')
    tick_time = _metric_sum(metrics, "phashfleet_reconcile_duration_seconds_sum", 'handler="tick"')
    rss_peak_kb = int(re.search(r"VmHWM:\s+(\d+)", Path(f"/proc/{fleet['operator'].pid}/status").read_text()).group(1))
    print(
        f"\nmean seconds to finish by priority: {mean}; tick mean {tick_time / ticks * 1000:.1f} ms over "
        f"{ticks:.0f} ticks; operator peak RSS {rss_peak_kb / 1024:.0f} MiB"
    )
    assert mean["high"] < mean["low"]
    assert rss_peak_kb < 300 * 1024
