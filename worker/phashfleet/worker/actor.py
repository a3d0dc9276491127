"""The Dramatiq actors: list a shard of a job's source; hash a batch and count its records exactly once;
collect a finished job.

A batch that raises is tried again with Dramatiq's backoff until it has had its job's spec.maxRetries
retries; then its files without a record become `failed` records naming the error, so the job ends.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import dramatiq
from dramatiq.middleware import CurrentMessage

from phashfleet import metrics
from phashfleet.files.access import allowed_roots_from_env, output_roots_from_env
from phashfleet.files.listing import SourceError
from phashfleet.hashing import Settings, hash_many_timed
from phashfleet.hashing.settings import max_retries_of
from phashfleet.job.collect import CollectPlan, collect
from phashfleet.job.complete import complete_batch
from phashfleet.job.dispatch import lease_seconds
from phashfleet.job.lister import ListingReader, ListPlan, list_shard
from phashfleet.results import batch_error, failed_records
from phashfleet.state import keys, result_store
from phashfleet.state.content_cache import ContentCache, hash_with_cache
from phashfleet.state.redis_store import RedisJobStore
from phashfleet.state.result_store import ResultStore

if TYPE_CHECKING:
    from dramatiq.brokers.redis import RedisBroker

log = logging.getLogger("phashfleet.worker")

ACTOR_NAME = "hash_batch"
COLLECT_ACTOR_NAME = "collect_job"
LIST_ACTOR_NAME = "list_source"
#: Seconds between renewals of a worker's lease on the batch it hashes (a lease outlives one file's timeout).
RENEW_INTERVAL = 0.5
#: Tries of a list or collect message that raises; then the operator asks again once the worker's hold runs out.
STEP_RETRIES = 3
#: Retries of a batch that keeps raising although its job allows no more: only while the failed records
#: cannot be written either (Redis down); then Dramatiq gives the message up and the operator's resend of
#: the overdue batch starts it again. spec.maxRetries is at most 20, so this never cuts a job's retries short.
RETRY_CEILING = 30


def _retry_when(retries: int, exc: BaseException) -> bool:
    # The actor raises only to be tried again (it records a batch as failed itself once the job's
    # spec.maxRetries are used up, see BatchHasher.retries_left), so every raise is a retry.
    return retries < RETRY_CEILING


def _retries_so_far() -> int:
    """How many times Dramatiq has retried the message being processed (0 on its first delivery)."""
    message = CurrentMessage.get_current_message()
    return int(message.options.get("retries", 0)) if message is not None else 0


def send_batch(broker: dramatiq.Broker, job_id: str, batch_id: int) -> None:
    """Enqueue the message for one batch: ids only, never file contents."""
    broker.enqueue(
        dramatiq.Message(queue_name=keys.queue(), actor_name=ACTOR_NAME, args=(job_id, batch_id), kwargs={}, options={})
    )


def send_collect(broker: dramatiq.Broker, job_id: str, plan: CollectPlan) -> None:
    """Enqueue the message that asks a worker to collect a finished job (group, write the output)."""
    broker.enqueue(
        dramatiq.Message(
            queue_name=keys.queue(),
            actor_name=COLLECT_ACTOR_NAME,
            args=(job_id, plan.to_message()),
            kwargs={},
            options={},
        )
    )


def send_list(broker: dramatiq.Broker, job_id: str, shard: int, plan: ListPlan, *, delay: float = 0.0) -> None:
    """Enqueue the message that asks a worker to list one shard of a job's source (after `delay` s)."""
    broker.enqueue(
        dramatiq.Message(
            queue_name=keys.queue(),
            actor_name=LIST_ACTOR_NAME,
            args=(job_id, shard, plan.to_message()),
            kwargs={},
            options={},
        ),
        delay=int(delay * 1000) or None,
    )


class BatchHasher:
    """Runs one batch: take the lease, hash (renewing it), publish the batch's part, count it once."""

    def __init__(self, store: RedisJobStore, results: ResultStore, allowed_roots: tuple[str, ...]) -> None:
        self.store = store
        self.results = results
        self.cache = ContentCache(results)
        self.listing = ListingReader(results)
        self.allowed_roots = allowed_roots

    def __call__(self, job_id: str, batch_id: int) -> str:
        snap = self.store.snapshot(job_id)
        if not snap.exists or snap.settings is None:
            metrics.count_batch("dropped")
            return "dropped: job has no state (deleted, expired or lost)"
        settings = snap.settings
        lease = lease_seconds(settings["timeout_seconds"])
        segments = self.store.start_batch(job_id, batch_id, time.time() + lease)
        if segments is None:
            metrics.count_batch("dropped")
            return "dropped: batch already done"
        files = self.listing.files(job_id, snap.epoch, segments)
        hash_settings = Settings.from_job(settings, self.allowed_roots)
        job = keys.job_ref(job_id)
        self._init_series(job, settings["algorithm"])
        records: list[dict[str, Any]] = []
        tally = metrics.FileTally(job, settings["algorithm"])

        def fresh(refs: list[str]) -> Iterator[dict[str, Any]]:
            for record, seconds in hash_many_timed(refs, hash_settings):
                tally.timed(seconds)  # the hashing process's own time for the file: cached ones take none
                yield record

        last_renew = time.monotonic()
        metrics.WORKER_INFLIGHT.inc()
        try:
            try:
                for record in hash_with_cache(self.cache, files, settings, self.allowed_roots, fresh):
                    tally.add(record)
                    if record["status"] == "failed":
                        log.warning("failed %s: %s", record["path"], record["reason"])
                    records.append(record)
                    now = time.monotonic()
                    if now - last_renew >= RENEW_INTERVAL:
                        tally.flush()  # the job's counters move on /metrics as often as its lease does
                        if not self.store.renew(job_id, batch_id, time.time() + lease):
                            metrics.count_batch("dropped")
                            return "dropped: the batch was finished by another delivery, or the job went, mid-batch"
                        last_renew = now
            finally:
                tally.flush()
            counted = complete_batch(self.store, self.results, job_id, snap.epoch, batch_id, records)
        finally:
            metrics.WORKER_INFLIGHT.dec()
        if counted <= 0:
            metrics.count_batch("dropped")
            return "dropped: the batch was counted before" if counted == 0 else "dropped: the job state went"
        metrics.count_batch("done")
        return "done"

    def retries_left(self, job_id: str, retries: int) -> bool:
        """True while a batch of the job that has been retried `retries` times may be tried again."""
        snap = self.store.snapshot(job_id)
        return snap.settings is not None and retries < max_retries_of(snap.settings)

    def fail_rest(self, job_id: str, batch_id: int, reason: str) -> str:
        """Give up on a batch: every file of it gets a failed record, unless a delivery published its part."""
        snap = self.store.snapshot(job_id)
        segments = self.store.batch_files(job_id, batch_id)
        if not snap.exists or snap.settings is None or segments is None:
            metrics.count_batch("dropped")
            return "dropped: batch already done or job gone"
        files = self.listing.files(job_id, snap.epoch, segments)
        settings = snap.settings
        records = failed_records(files, settings, reason)
        if complete_batch(self.store, self.results, job_id, snap.epoch, batch_id, records) <= 0:
            metrics.count_batch("dropped")
            return "dropped: batch counted before, or the job state went"
        job = keys.job_ref(job_id)
        self._init_series(job, settings["algorithm"])
        for record in records:
            self._observe(job, settings["algorithm"], record)
            log.warning("failed %s: %s", record["path"], reason)
        metrics.count_batch("failed")
        return f"failed: {len(records)} files after the last retry ({reason})"

    @staticmethod
    def _init_series(job: tuple[str, str], algorithm: str) -> None:
        """Create the job's counters at 0 before any file counts, so rate() sees their first increase."""
        for result in ("ok", "failed", "skipped"):
            metrics.FILES_PROCESSED.labels(*job, algorithm, result)
        metrics.BYTES_READ.labels(*job)

    @staticmethod
    def _observe(job: tuple[str, str], algorithm: str, record: dict[str, Any]) -> None:
        metrics.FILES_PROCESSED.labels(*job, algorithm, record["status"]).inc()
        if record["status"] != "ok":
            metrics.FILE_FAILURES.labels(*job, record["status"], metrics.reason_code(record.get("reason"))).inc()
        if record.get("bytes"):
            metrics.BYTES_READ.labels(*job).inc(record["bytes"])


def declare(broker: RedisBroker) -> dramatiq.Actor[[str, int], None]:
    """Declare the hash_batch and collect_job actors on `broker`, with the store on the broker's own Redis client."""
    store = RedisJobStore(broker.client)
    results = result_store.from_env()
    hasher = BatchHasher(store, results, allowed_roots_from_env())
    output_roots = output_roots_from_env() or None

    def collect_job(job_id: str, plan: dict[str, Any]) -> None:
        """Group a finished job's near-duplicates and write its output, from its parts."""
        report = collect(
            store, results, job_id, CollectPlan.from_message(plan), output_roots=output_roots, now=time.time()
        )
        log.info("job %s collected: %s", job_id, report if report is not None else "nothing to do")

    def list_source(job_id: str, shard: int, plan: dict[str, Any]) -> None:
        """List one shard of a job's source into the result store; a source error is kept for the operator."""
        try:
            outcome = list_shard(
                store, results, job_id, shard, ListPlan.from_message(plan), allowed_roots=hasher.allowed_roots
            )
        except SourceError as exc:
            log.warning("job %s: shard %d of the source could not be listed: %s", job_id, shard, exc)
            return
        log.info("job %s: %s", job_id, outcome)

    def hash_batch(job_id: str, batch_id: int) -> None:
        """Hash one batch of a job; after its last retry, record the files it could not as failed."""
        try:
            outcome = hasher(job_id, batch_id)
        except Exception as exc:  # not Dramatiq's Shutdown or TimeLimitExceeded (BaseExceptions): no failures
            retries = _retries_so_far()
            if hasher.retries_left(job_id, retries):
                log.warning(
                    "batch %s/%s raised on try %d, trying again: %s", job_id, batch_id, retries + 1, batch_error(exc)
                )
                raise
            log.warning(
                "batch %s/%s raised on its last try (%d): %s",
                job_id,
                batch_id,
                retries + 1,
                batch_error(exc),
                exc_info=True,
            )
            outcome = hasher.fail_rest(job_id, batch_id, batch_error(exc))
        log.debug("batch %s/%s: %s", job_id, batch_id, outcome)

    if not any(isinstance(m, CurrentMessage) for m in broker.middleware):
        broker.add_middleware(CurrentMessage())  # tells the actor how many retries its message has had
    broker.declare_queue(keys.queue())
    for name, job_step in ((LIST_ACTOR_NAME, list_source), (COLLECT_ACTOR_NAME, collect_job)):
        # A few tries, then the operator sends the step again once the worker's hold on it runs out.
        dramatiq.actor(
            actor_name=name,
            queue_name=keys.queue(),
            broker=broker,
            max_retries=STEP_RETRIES,
            min_backoff=1000,
            max_backoff=30_000,
            time_limit=24 * 3600 * 1000,
        )(job_step)
    return dramatiq.actor(
        actor_name=ACTOR_NAME,
        queue_name=keys.queue(),
        broker=broker,
        retry_when=_retry_when,
        min_backoff=500,
        max_backoff=30_000,
        time_limit=24 * 3600 * 1000,
    )(hash_batch)
