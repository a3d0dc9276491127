"""The operator side of bench/scale.py, in a process of its own so its memory is measured alone.

It loads what the operator loads (kopf, the Kubernetes client, the handlers) and drives one
PhashJob with the operator's `JobEngine` exactly as the kopf timer does: one tick a second, the
status written (counted) only when it changed, plus the autoscaler's backlog reading. The job's
source is `synthetic://nN/` (bench/synthfs.py). Prints one JSON line with the measurements.

    python bench/scale_driver.py --files 10000 --workers 2 --batch-size 1000   # env: PHASHFLEET_REDIS_*
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def route_synthetic() -> None:
    """Let `iter_source` list synthetic:// through its generic fsspec walker (it refuses unknown schemes).

    Only this benchmark process is changed: phash-fleet itself keeps its scheme allow-list.
    """
    import fsspec

    import synthfs
    from phashfleet.files import listing as sources

    fsspec.register_implementation(synthfs.PROTOCOL, synthfs.SyntheticFileSystem, clobber=True)
    product_walker_for = sources._walker_for

    def walker_for(uri: str, roots, storage_options):
        if uri.startswith(f"{synthfs.PROTOCOL}://"):
            return sources._remote_walker(uri, synthfs.PROTOCOL, storage_options)
        return product_walker_for(uri, roots, storage_options)

    sources._walker_for = walker_for


def memory() -> dict[str, int]:
    """This process's resident memory now and its peak so far (bytes)."""
    out = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line.split(":")[0]] = int(line.split()[1]) * 1024
    return {"rss": out.get("VmRSS", 0), "peak_rss": out.get("VmHWM", 0)}


def drive(engine, job_id: str, spec, *, interval: float, timeout: float) -> dict:
    """Tick one job until it ends; return timings, status writes and per-tick figures."""
    status: dict = {}
    writes = 0
    ticks = []
    first_handout = None
    started = time.monotonic()
    while True:
        tick_start = time.monotonic()
        new = engine.tick(job_id, spec, dict(status), lambda kind, reason, message: None)
        engine.backlog()  # what the autoscaler reads every second
        new["observedGeneration"] = 1
        changed = {k: v for k, v in new.items() if status.get(k) != v}
        if changed:
            writes += 1
            status.update(changed)
        now = time.monotonic()
        snap = engine.store.snapshot(job_id)
        if first_handout is None and snap.exists and snap.listed > 0:
            first_handout = tick_start - started
        ticks.append(
            {
                "start": round(tick_start - started, 3),
                "tick_s": round(now - tick_start, 4),
                "done": status.get("succeeded", 0) + status.get("failed", 0) + status.get("skipped", 0),
                "rss": memory()["rss"],
            }
        )
        if status.get("phase") in ("Succeeded", "Failed"):
            break
        if now - started > timeout:
            raise SystemExit(f"job {job_id} not done after {timeout:.0f}s: {status}")
        time.sleep(interval)  # kopf's timer interval: the next tick is due a second after this one ended
    elapsed = time.monotonic() - started
    # Each tick owns one timer period: from its start to the next one's (the last one's ends a period later).
    periods = ticks[-1]["start"] + max(interval, ticks[-1]["tick_s"])
    return {
        "seconds": elapsed,
        "first_handout_s": first_handout,
        "status_writes": writes,
        "status_writes_per_s": writes / periods,
        "ticks": len(ticks),
        "first_tick_s": ticks[0]["tick_s"],
        "max_tick_s": max(t["tick_s"] for t in ticks[1:] or ticks),
        "status": {k: status.get(k) for k in ("phase", "total", "succeeded", "failed", "skipped", "progress")},
        "failures_sample": (status.get("failures") or [])[:2],
        "timeline": ticks,
    }


def main() -> int:
    """Warm up on a tiny job, then drive the measured one; print the JSON result."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, required=True)
    parser.add_argument("--workers", type=int, required=True)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--timeout", type=float, default=3600.0)
    args = parser.parse_args()

    route_synthetic()
    import synthfs
    from phashfleet.job.spec import parse_spec
    from phashfleet.state.redis_store import RedisJobStore
    from phashfleet.worker.actor import send_batch
    from phashfleet.worker.broker import make_broker, redis_client
    from phashfleet_operator import handlers  # noqa: F401 - the operator process has kopf and its handlers loaded
    from phashfleet_operator.config import OperatorConfig
    from phashfleet_operator.engine import JobEngine

    broker = make_broker(redis_client())
    store = RedisJobStore(broker.client)
    engine = JobEngine(
        store, lambda jid, bid: send_batch(broker, jid, bid), OperatorConfig(), worker_count=lambda: args.workers
    )

    def spec_for(n: int, batch: int):
        # parse_spec refuses schemes outside its allow-list; the source is swapped in after the checks.
        spec = parse_spec({"source": {"uri": "file:///placeholder", "include": ["**/*.png"]}, "batchSize": batch})
        return dataclasses.replace(spec, source={**spec.source, "uri": synthfs.root_uri(n)})

    warm_id = f"bench.warmup.{uuid.uuid4().hex[:8]}"
    warm = drive(engine, warm_id, spec_for(4 * args.workers, 1), interval=0.2, timeout=300)
    store.delete(warm_id)
    baseline = memory()
    job_id = f"bench.scale-{args.files}.{uuid.uuid4().hex[:8]}"
    result = drive(engine, job_id, spec_for(args.files, args.batch_size), interval=args.interval, timeout=args.timeout)
    result.update(
        {
            "job_id": job_id,
            "warmup_s": warm["seconds"],
            "baseline_rss": baseline["rss"],
            "peak_rss": memory()["peak_rss"],
            "max_tick_rss": max(t["rss"] for t in result["timeline"]),
        }
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
