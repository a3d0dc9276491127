"""How a job ends, decided without touching its data: the output checked up front, the collector asked once.

The operator and `phashfleet run` call these; the collector itself (job.collect) runs on the data plane.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from phashfleet.job.collect import CollectPlan
from phashfleet.job.spec import JobSpec
from phashfleet.state.store import JobSnapshot

#: Report keys the collector writes that are status fields.
STATUS_FIELDS = ("duplicateGroups", "duplicateFiles", "outputUri")


def output_problem(spec: JobSpec, output_roots: Sequence[str] | None, *, probe: bool = True) -> str | None:
    """Why the job's output could not be written (checked before any file is hashed), or None.

    `probe=False` checks only what needs no access to the output (format, scheme, allowed roots): the
    operator's check, since the workers' collector writes the output and the operator holds no output volume.
    """
    if not spec.output:
        return None
    from phashfleet.files.outputs import OutputError, check_target, check_writable

    try:
        if probe:
            check_writable(spec.output["uri"], spec.output["format"], allowed_roots=output_roots)
        else:
            check_target(spec.output["uri"], spec.output["format"], allowed_roots=output_roots)
    except OutputError as exc:
        return f"spec.output.uri: {exc}"
    return None


def collect_plan(spec: JobSpec, *, writes: bool = True) -> CollectPlan:
    """What the collector does for a job; `writes=False` only sets its results' expiry (a job that failed early)."""
    output = spec.output if writes else None
    return CollectPlan(
        max_distance=spec.max_distance if writes else None,
        output_uri=output["uri"] if output else None,
        output_format=output["format"] if output else None,
        ttl_seconds=spec.ttl_seconds,
    )


def collect_due(snap: JobSnapshot, now: float, *, queue_grace: float) -> bool:
    """True when the collector should be asked (again): every batch is back and nobody is collecting.

    Asked once; asked again when its hold on the job ran out (a worker died collecting), or it never
    started within `queue_grace` s (the message was lost), as an overdue batch is sent again.
    """
    if not snap.finished or snap.collected is not None:
        return False
    if snap.collect_sent is None:
        return True
    if snap.collect_lease is not None:
        return snap.collect_lease <= now
    return now - snap.collect_sent >= queue_grace


def collecting_message(snap: JobSnapshot, spec: JobSpec) -> str:
    """The Running status message while the collector works."""
    what = [
        w
        for w, wanted in (
            ("grouping near-duplicates", spec.max_distance is not None),
            ("writing the output", bool(spec.output)),
        )
        if wanted
    ]
    return f"all {snap.done_files} files are hashed; " + (" and ".join(what) or "closing the job's results")


def report_fields(report: dict[str, Any]) -> dict[str, Any]:
    """The status fields of a collector's report."""
    return {k: report[k] for k in STATUS_FIELDS if k in report}
