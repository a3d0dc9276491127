"""The collector: once every batch of a job is back, group near-duplicates and write the output, from the parts.

Data-plane work, run by a worker (the `collect_job` actor) or by `phashfleet run` itself; the operator only
asks for it (job.finish) and reads the report it leaves in the job store. Memory is bounded by the job's
hashes (one row of 64-bit words per ok file, for grouping), never by its records: the parts are streamed
twice, once to group and once to write.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from phashfleet.job.hold import kept
from phashfleet.state.content_cache import ContentCache
from phashfleet.state.result_store import ResultStore
from phashfleet.state.store import JobStore

log = logging.getLogger("phashfleet.collect")
#: Seconds the collector's hold on a job lasts; renewed a third of the way through while it works.
COLLECT_LEASE = 60.0


@dataclass(frozen=True)
class CollectPlan:
    """What the collector does for one job, from its spec (sent in the message: the collector reads no PhashJob)."""

    max_distance: int | None = None
    output_uri: str | None = None
    output_format: str | None = None
    ttl_seconds: int = 86400

    def to_message(self) -> dict[str, Any]:
        """The plan as a message argument."""
        return asdict(self)

    @classmethod
    def from_message(cls, raw: dict[str, Any]) -> CollectPlan:
        """The plan a message carries."""
        return cls(**raw)


def collect(
    store: JobStore,
    results: ResultStore,
    job_id: str,
    plan: CollectPlan,
    *,
    output_roots: Sequence[str] | None,
    now: float,
) -> dict[str, Any] | None:
    """Group, write the output and set the results' expiry; return the report kept in the job store.

    None when there is nothing to do (the job was collected before, or has no state). A failed output write
    is a report too (`{"error": ...}`): the job ends Failed naming spec.output.uri.
    """
    if not store.start_collect(job_id, now + COLLECT_LEASE):
        return None
    snap = store.snapshot(job_id)
    epoch = snap.epoch
    with kept(lambda: store.start_collect(job_id, time.time() + COLLECT_LEASE), COLLECT_LEASE / 3):
        report = _collect(results, job_id, epoch, plan, output_roots)
    results.delete_epochs(job_id, keep=epoch)  # parts of a start-over (Redis lost the job) count nowhere
    results.write_expiry(job_id, plan.ttl_seconds, now)
    results.sweep(now)
    ContentCache(results).sweep(now)
    store.collected(job_id, report)
    return report


def _collect(
    results: ResultStore, job_id: str, epoch: str, plan: CollectPlan, output_roots: Sequence[str] | None
) -> dict[str, Any]:
    from phashfleet.files.outputs import OutputError

    report: dict[str, Any] = {}
    labels = None
    if plan.max_distance is not None:
        from phashfleet.dupes import group_records

        labels = group_records(results.iter_records(job_id, epoch), plan.max_distance, keep_paths=False)
        report["duplicateGroups"] = labels.duplicate_groups
        report["duplicateFiles"] = labels.duplicate_files
    if plan.output_uri:
        from phashfleet.files.outputs import write_records

        def with_groups() -> Iterator[dict[str, Any]]:
            for position, record in enumerate(results.iter_records(job_id, epoch)):
                if labels is not None:
                    record["group"] = labels.group_of(position)
                yield record

        try:
            write_records(
                with_groups(), plan.output_uri, plan.output_format or "jsonl", allowed_roots=output_roots or None
            )
        except (OutputError, OSError) as exc:
            log.warning("job %s: the output could not be written: %s", job_id, exc)
            return {"error": f"spec.output.uri: {exc}"}
        report["outputUri"] = plan.output_uri
    return report
