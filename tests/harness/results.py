"""A job's records as a reader finds them: the parts in the result store of the job state's epoch."""

from __future__ import annotations

from typing import Any

from phashfleet.state import result_store
from phashfleet.state.store import JobStore


def records_of(store: JobStore, job_id: str) -> list[dict[str, Any]]:
    """Every record of a job, read from the result store PHASHFLEET_RESULT_STORE names (the tests' own)."""
    return list(result_store.from_env().iter_records(job_id, store.snapshot(job_id).epoch))
