"""What happens when a job's last batch is back: near-duplicate groups and the output file."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from phashfleet.jobspec import JobSpec


def group_members(store, job_id: str, max_distance: int) -> dict[str, int]:
    """Map path -> group id for every file that has a near-duplicate (others are left out)."""
    from phashfleet.dupes import group_ids  # noqa: PLC0415 - numpy-heavy, only at job end

    paths: list[str] = []
    hashes: list[str] = []
    for record in store.iter_results(job_id):
        if record.get("status") == "ok" and record.get("hash"):
            paths.append(record["path"])
            hashes.append(record["hash"])
    if not hashes:
        return {}
    ids = group_ids(hashes, max_distance)
    return {path: gid for path, gid in zip(paths, ids) if gid is not None}


def _with_groups(store, job_id: str, groups: dict[str, int] | None) -> Iterator[dict[str, Any]]:
    for record in store.iter_results(job_id):
        if groups is not None:
            record["group"] = groups.get(record["path"])
        yield record


def finish_job(store, job_id: str, spec: JobSpec, output_roots: Sequence[str] | None) -> dict[str, Any]:
    """Group near-duplicates and write the output; return the status fields they produce."""
    status: dict[str, Any] = {}
    groups = None
    if spec.max_distance is not None:
        groups = group_members(store, job_id, spec.max_distance)
        status["duplicateGroups"] = len(set(groups.values()))
        status["duplicateFiles"] = len(groups)
    if spec.output:
        from phashfleet.outputs import write_records  # noqa: PLC0415

        write_records(_with_groups(store, job_id, groups), spec.output["uri"], spec.output["format"],
                      allowed_roots=output_roots)
        status["outputUri"] = spec.output["uri"]
    return status
