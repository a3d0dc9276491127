"""The one Dramatiq actor: hash a batch of files and record every file's result exactly once."""

from __future__ import annotations

import logging
import time
from typing import Any

import dramatiq
import redis
from dramatiq.middleware import Shutdown

from phashfleet import keys, metrics
from phashfleet.access import allowed_roots_from_env
from phashfleet.cached import hash_with_cache
from phashfleet.dispatch import lease_seconds
from phashfleet.hashing import Settings, hash_many
from phashfleet.store import RedisJobStore

log = logging.getLogger("phashfleet.worker")

ACTOR_NAME = "hash_batch"
#: Seconds between writes of finished records while a batch is being hashed (each write renews the lease).
FLUSH_INTERVAL = 0.5
#: Dramatiq retries a batch only for infrastructure errors, never for bad files (those are records).
INFRA_ERRORS = (redis.RedisError, ConnectionError, TimeoutError, Shutdown)


def _retry_when(retries: int, exc: BaseException) -> bool:
    return isinstance(exc, INFRA_ERRORS) and retries < 20


def send_batch(broker: dramatiq.Broker, job_id: str, batch_id: int) -> None:
    """Enqueue the message for one batch: ids only, never file contents."""
    broker.enqueue(dramatiq.Message(queue_name=keys.QUEUE, actor_name=ACTOR_NAME, args=(job_id, batch_id),
                                    kwargs={}, options={}))


class BatchHasher:
    """Runs one batch: take the lease, hash, record in small idempotent steps, finish."""

    def __init__(self, store: RedisJobStore, allowed_roots: tuple[str, ...]) -> None:
        self.store = store
        self.allowed_roots = allowed_roots

    def __call__(self, job_id: str, batch_id: int) -> str:
        snap = self.store.snapshot(job_id)
        if not snap.exists or snap.settings is None:
            metrics.BATCHES_PROCESSED.labels("dropped").inc()
            return "dropped: job has no state (deleted, expired or lost)"
        settings = snap.settings
        lease = lease_seconds(settings["timeout_seconds"])
        files = self.store.start_batch(job_id, batch_id, time.time() + lease)
        if files is None:
            metrics.BATCHES_PROCESSED.labels("dropped").inc()
            return "dropped: batch already done"
        hash_settings = Settings(algorithm=settings["algorithm"], hash_size=settings["hash_size"],
                                 exact=settings["exact"], timeout_seconds=settings["timeout_seconds"],
                                 allowed_roots=self.allowed_roots)
        job_label = job_id.rsplit(".", 1)[0]
        self._init_series(job_label, settings["algorithm"])
        pending: list[dict[str, Any]] = []
        last_flush = last_file = time.monotonic()
        metrics.WORKER_INFLIGHT.inc()
        try:
            fresh = lambda misses: hash_many(misses, hash_settings)  # noqa: E731
            for record in hash_with_cache(self.store.client, files, settings, self.allowed_roots, fresh):
                now = time.monotonic()
                metrics.HASH_DURATION.labels(settings["algorithm"]).observe(now - last_file)
                last_file = now
                self._observe(job_label, settings["algorithm"], record)
                pending.append(record)
                if time.monotonic() - last_flush >= FLUSH_INTERVAL:
                    if self.store.record(job_id, batch_id, pending, finish=False,
                                         lease_deadline=time.time() + lease) < 0:
                        metrics.BATCHES_PROCESSED.labels("dropped").inc()
                        return "dropped: job state disappeared mid-batch"
                    pending, last_flush = [], time.monotonic()
            self.store.record(job_id, batch_id, pending, finish=True)
        finally:
            metrics.WORKER_INFLIGHT.dec()
        metrics.BATCHES_PROCESSED.labels("done").inc()
        return "done"

    @staticmethod
    def _init_series(job: str, algorithm: str) -> None:
        """Create the job's counters at 0 before any file counts, so rate() sees their first increase."""
        for result in ("ok", "failed", "skipped"):
            metrics.FILES_PROCESSED.labels(job, algorithm, result)
        metrics.BYTES_READ.labels(job)

    @staticmethod
    def _observe(job: str, algorithm: str, record: dict[str, Any]) -> None:
        metrics.FILES_PROCESSED.labels(job, algorithm, record["status"]).inc()
        if record["status"] != "ok":
            metrics.FILE_FAILURES.labels(job, record["status"], metrics.reason_code(record.get("reason"))).inc()
        if record.get("bytes"):
            metrics.BYTES_READ.labels(job).inc(record["bytes"])


def declare(broker: dramatiq.Broker) -> dramatiq.Actor:
    """Declare the hash_batch actor on `broker` with the store on the broker's own Redis client."""
    hasher = BatchHasher(RedisJobStore(broker.client), allowed_roots_from_env())

    def hash_batch(job_id: str, batch_id: int) -> None:
        """Hash one batch of a job."""
        log.debug("batch %s/%s: %s", job_id, batch_id, hasher(job_id, batch_id))

    broker.declare_queue(keys.QUEUE)
    return dramatiq.actor(hash_batch, actor_name=ACTOR_NAME, queue_name=keys.QUEUE, broker=broker,
                          retry_when=_retry_when, min_backoff=500, max_backoff=30_000,
                          time_limit=24 * 3600 * 1000)
