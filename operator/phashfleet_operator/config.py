"""Operator settings from the environment (the chart sets them) and command-line flags."""

from __future__ import annotations

import os
from dataclasses import dataclass

from phashfleet.files.access import allowed_roots_from_env, output_roots_from_env

AUTOSCALING_MODES = ("operator", "keda", "none")


def _int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


@dataclass(frozen=True)
class OperatorConfig:
    """Everything the operator's logic needs to know about its surroundings."""

    worker_deployment: str = "phash-fleet-worker"
    worker_namespace: str | None = None
    autoscaling: str = "operator"
    min_replicas: int = 0
    max_replicas: int = 10
    #: Queued messages per worker (the chart's autoscaling.batchesPerWorker, its default too; KEDA's listLength).
    batches_per_worker: int = 4
    job_window: int = 16
    queue_per_worker: int = 4
    idle_cooldown_seconds: float = 30.0
    #: Seconds a job may wait with backlog, no running worker and no progress before it says NoWorkers.
    no_workers_seconds: float = 60.0
    #: Running PhashJobs a namespace may have when its phashfleet.io/max-running-jobs says nothing (0: no limit).
    max_running_jobs_per_namespace: int = 0
    allowed_roots: tuple[str, ...] = ()
    output_roots: tuple[str, ...] = ()

    @classmethod
    def from_env(cls) -> OperatorConfig:
        """Read PHASHFLEET_* variables; unset ones keep their defaults."""
        mode = os.environ.get("PHASHFLEET_AUTOSCALING", "operator")
        if mode not in AUTOSCALING_MODES:
            raise ValueError(f"PHASHFLEET_AUTOSCALING must be one of {', '.join(AUTOSCALING_MODES)}, got {mode!r}")
        return cls(
            worker_deployment=os.environ.get("PHASHFLEET_WORKER_DEPLOYMENT", cls.worker_deployment),
            worker_namespace=os.environ.get("PHASHFLEET_WORKER_NAMESPACE") or None,
            autoscaling=mode,
            min_replicas=_int("PHASHFLEET_MIN_REPLICAS", cls.min_replicas),
            max_replicas=_int("PHASHFLEET_MAX_REPLICAS", cls.max_replicas),
            batches_per_worker=_int("PHASHFLEET_BATCHES_PER_WORKER", cls.batches_per_worker),
            job_window=_int("PHASHFLEET_JOB_WINDOW", cls.job_window),
            idle_cooldown_seconds=float(os.environ.get("PHASHFLEET_IDLE_COOLDOWN", cls.idle_cooldown_seconds)),
            no_workers_seconds=float(os.environ.get("PHASHFLEET_NO_WORKERS_SECONDS", cls.no_workers_seconds)),
            max_running_jobs_per_namespace=_int(
                "PHASHFLEET_MAX_RUNNING_JOBS_PER_NAMESPACE", cls.max_running_jobs_per_namespace
            ),
            allowed_roots=allowed_roots_from_env(),
            output_roots=output_roots_from_env(),
        )
