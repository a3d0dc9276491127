"""Every `phashfleet_` Prometheus metric, defined once; names and labels are part of the API.

Labels stay low-cardinality: a PhashJob by its `namespace` and its name in `phashjob` (workers and
operator alike, both split from the job id by `phashfleet.state.keys.job_ref`; never `job`, which is
Prometheus's own target label, so no scrape needs honor_labels), an algorithm, a result, a reason
*code* (the part of a record's reason before the first colon), a queue, a handler, a phase. Never a
file path.

Worker processes run under prometheus-client's multiprocess mode (PROMETHEUS_MULTIPROC_DIR, an
emptyDir in the chart) so the counters of several processes add up on one /metrics endpoint.
"""

from collections import Counter as Tally
from collections.abc import Mapping
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

#: Hash latency buckets, seconds: a 1 MP fast-path hash is ~2 ms, a 12 MP exact one ~150 ms.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

# --- workers -----------------------------------------------------------------------------------
FILES_PROCESSED = Counter(
    "phashfleet_files_processed_total",
    "Files processed, by job, algorithm and result (ok, failed, skipped); counted once per file.",
    ["namespace", "phashjob", "algorithm", "result"],
)
FILE_FAILURES = Counter(
    "phashfleet_file_failures_total",
    "Files that failed or were skipped, by job and reason code (timeout, decode_error, ...).",
    ["namespace", "phashjob", "result", "reason"],
)
HASH_DURATION = Histogram(
    "phashfleet_hash_duration_seconds",
    "Time to read, decode and hash one file.",
    ["algorithm"],
    buckets=LATENCY_BUCKETS,
)
BYTES_READ = Counter(
    "phashfleet_bytes_read_total",
    "Bytes of source files read by workers, by job.",
    ["namespace", "phashjob"],
)
#: Every `outcome` of phashfleet_batches_processed_total with what it means (its help text); count_batch takes only these.
BATCH_OUTCOMES = {
    "done": "hashed and recorded",
    "failed": "kept raising past spec.maxRetries, its files are failed records",
    "dropped": "its job is gone or the batch was already done",
}
BATCHES_PROCESSED = Counter(
    "phashfleet_batches_processed_total",
    "Batches a worker finished, by outcome: " + "; ".join(f"{k} ({v})" for k, v in BATCH_OUTCOMES.items()) + ".",
    ["outcome"],
)
WORKER_INFLIGHT = Gauge(
    "phashfleet_worker_inflight_batches",
    "Batches a worker process is hashing right now.",
    multiprocess_mode="livesum",
)

# --- operator ----------------------------------------------------------------------------------
QUEUE_BACKLOG = Gauge(
    "phashfleet_queue_backlog",
    "Messages waiting in a broker queue.",
    ["queue"],
)
INFLIGHT_BATCHES = Gauge(
    "phashfleet_inflight_batches",
    "Batches handed out and not yet done, by job.",
    ["namespace", "phashjob"],
)
WORKER_REPLICAS_DESIRED = Gauge(
    "phashfleet_worker_replicas_desired",
    "Worker replicas the autoscaler wants.",
)
WORKER_REPLICAS_CURRENT = Gauge(
    "phashfleet_worker_replicas_current",
    "Worker replicas the Deployment reports ready.",
)
JOBS = Gauge(
    "phashfleet_jobs",
    "PhashJobs known to the operator, by phase.",
    ["phase"],
)
JOB_PROGRESS = Gauge(
    "phashfleet_job_progress_ratio",
    "Share of a job's files that are done (0..1).",
    ["namespace", "phashjob"],
)
JOB_FILES = Gauge(
    "phashfleet_job_files",
    "A job's file counts by state (total, succeeded, failed, skipped).",
    ["namespace", "phashjob", "state"],
)
REDIS_UP = Gauge(
    "phashfleet_redis_up",
    "1 when the operator's last Redis round trip (PING) succeeded, else 0; the RedisDown alert reads it.",
)
RECONCILE_ERRORS = Counter(
    "phashfleet_reconcile_errors_total",
    "Operator handler runs that raised.",
    ["handler"],
)
RECONCILE_DURATION = Histogram(
    "phashfleet_reconcile_duration_seconds",
    "Operator handler run time.",
    ["handler"],
    buckets=LATENCY_BUCKETS,
)
STATUS_WRITES = Counter(
    "phashfleet_status_writes_total",
    "Status patches written to PhashJobs.",
    ["namespace", "phashjob"],
)


def count_batch(outcome: str) -> None:
    """Count one batch a worker finished; `outcome` is one of BATCH_OUTCOMES (the help names them)."""
    if outcome not in BATCH_OUTCOMES:
        raise ValueError(f"unknown batch outcome {outcome!r}; add it to BATCH_OUTCOMES")
    BATCHES_PROCESSED.labels(outcome).inc()


def reason_code(reason: str | None) -> str:
    """Return the low-cardinality code of a record's reason: the text before the first colon."""
    if not reason:
        return "none"
    return reason.split(":", 1)[0].strip().replace(" ", "_")[:40] or "none"


class FileTally:
    """One job's per-file counts and hash times, kept here and added to the metrics in one go by `flush`.

    In multiprocess mode every increment is a locked write to an mmapped file: per tiny file that costs
    more than the rest of the worker's part in hashing it, per flush nothing.
    """

    def __init__(self, job: tuple[str, str], algorithm: str) -> None:
        self.job, self.algorithm = job, algorithm
        self._results: Tally[str] = Tally()
        self._failures: Tally[tuple[str, str]] = Tally()
        self._bytes = 0
        self._seconds: list[float] = []

    def add(self, record: Mapping[str, Any]) -> None:
        """Count one file's record (its result, its failure's reason code, its bytes)."""
        status = record["status"]
        self._results[status] += 1
        if status != "ok":
            self._failures[status, reason_code(record.get("reason"))] += 1
        if record.get("bytes"):
            self._bytes += record["bytes"]

    def timed(self, seconds: float) -> None:
        """One file's hash time (phashfleet_hash_duration_seconds)."""
        self._seconds.append(seconds)

    def flush(self) -> None:
        """Add what was counted since the last flush to the metrics."""
        for status, count in self._results.items():
            FILES_PROCESSED.labels(*self.job, self.algorithm, status).inc(count)
        for (status, code), count in self._failures.items():
            FILE_FAILURES.labels(*self.job, status, code).inc(count)
        if self._bytes:
            BYTES_READ.labels(*self.job).inc(self._bytes)
        if self._seconds:
            histogram = HASH_DURATION.labels(self.algorithm)
            for seconds in self._seconds:
                histogram.observe(seconds)
        self._results.clear()
        self._failures.clear()
        self._bytes = 0
        self._seconds.clear()
