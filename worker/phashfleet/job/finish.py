"""A job's output: checked before hashing starts, and written (with near-duplicate groups) when the last batch is back."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from phashfleet.job.spec import JobSpec
from phashfleet.state.store import JobStore

if TYPE_CHECKING:
    from phashfleet.dupes.streaming import RecordGroups


def _with_groups(store: JobStore, job_id: str, groups: RecordGroups | None) -> Iterator[dict[str, Any]]:
    for record in store.iter_results(job_id):
        if groups is not None:
            record["group"] = groups.group_of_path(record["path"])
        yield record


def output_problem(spec: JobSpec, output_roots: Sequence[str] | None) -> str | None:
    """Why the job's output could not be written (checked before any file is hashed), or None."""
    if not spec.output:
        return None
    from phashfleet.files.outputs import OutputError, check_writable

    try:
        check_writable(spec.output["uri"], spec.output["format"], allowed_roots=output_roots)
    except OutputError as exc:
        return f"spec.output.uri: {exc}"
    return None


def finish_job(store: JobStore, job_id: str, spec: JobSpec, output_roots: Sequence[str] | None) -> dict[str, Any]:
    """Group near-duplicates and write the output; return the status fields they produce."""
    status: dict[str, Any] = {}
    groups: RecordGroups | None = None
    if spec.max_distance is not None:
        from phashfleet.dupes import group_records

        groups = group_records(store.iter_results(job_id), spec.max_distance)
        status["duplicateGroups"] = groups.duplicate_groups
        status["duplicateFiles"] = groups.duplicate_files
    if spec.output:
        from phashfleet.files.outputs import write_records

        write_records(
            _with_groups(store, job_id, groups), spec.output["uri"], spec.output["format"], allowed_roots=output_roots
        )
        status["outputUri"] = spec.output["uri"]
    return status
