"""Completing a batch: publish its records as a part in the result store, then count it once in the job store."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from phashfleet.state.result_store import ResultStore
from phashfleet.state.store import BatchTally, JobStore


def complete_batch(
    store: JobStore, results: ResultStore, job_id: str, epoch: str, batch_id: int, records: Iterable[dict[str, Any]]
) -> int:
    """Publish a batch's part (the first delivery's wins) and count what it holds: 1 counted now, 0 counted
    before (or the batch was dropped), -1 when the job has no state.

    Part first, count second: a worker killed between the two leaves a part no count covers; the batch's
    lease runs out, it is sent again, and the next delivery counts the part that is there.
    """
    published = results.publish_part(job_id, epoch, batch_id, records)
    return store.finish_batch(job_id, batch_id, BatchTally.of(published))
