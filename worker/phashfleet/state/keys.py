"""Every Redis key phash-fleet uses, built from one prefix.

Layout (``P`` is the prefix, ``phashfleet`` by default; ``J`` is ``P:job:<job id>``)::

    P:jobs                  set    ids of jobs that have state in Redis
    J:meta                  hash   settings (JSON), listed, next_batch, listing_done, total, source_listed, epoch (the state's id:
                                   its parts in the result store live under it), collect_sent, collect_lease,
                                   collected (the collector's report, JSON)
    J:counts                hash   ok / failed / skipped, and cached (of the ok ones); bumped once per finished batch
    J:failures              list   the first MAX_FAILURES failed records (path, reason)
    J:inflight              zset   batch id -> time it was handed out (not yet done)
    J:leases                zset   batch id -> lease deadline, while a worker is hashing it
    J:listing               hash   the source's listing by workers (job.lister), a few fields per shard (at most
                                   lister.MAX_SHARDS): shards, root (token), done:<s> "files:token", sent:<s>,
                                   lease:<s>, so_far:<s>, error:<s> (JSON)
    J:batch:<id>            string JSON list of the batch's segments of the listing (deleted when done)

Records never live in Redis: each finished batch is one part in the result store
(phashfleet.state.result_store), so Redis holds a job's counts and its batches in flight, whatever its size.

Dramatiq's own keys live under its ``dramatiq:`` namespace (queue ``dramatiq:Q``, where ``Q`` is the
queue name, ``phashfleet`` by default). Multi-key changes run as Lua scripts in ``phashfleet/state/lua/``.

Prefix and queue come from PHASHFLEET_KEY_PREFIX and PHASHFLEET_QUEUE, read at every use: one
`phashfleet run --redis` gives itself and the workers it starts names of their own (`run_names`), so a
fleet on the same Redis never sees its keys or messages.
"""

from __future__ import annotations

import os

from phashfleet.job.spec import schema_of

#: Failed records a job keeps for its status: the CRD's bound on status.failures (both stores keep this many).
MAX_FAILURES: int = schema_of("status.failures")["maxItems"]
PREFIX_ENV = "PHASHFLEET_KEY_PREFIX"
QUEUE_ENV = "PHASHFLEET_QUEUE"
#: The prefix and queue of the cluster fleet (and of every process that sets neither variable).
DEFAULT_NAME = "phashfleet"


def prefix() -> str:
    """The prefix of every key: PHASHFLEET_KEY_PREFIX, else phashfleet."""
    return os.environ.get(PREFIX_ENV) or DEFAULT_NAME


def queue() -> str:
    """The Dramatiq queue every batch goes through: PHASHFLEET_QUEUE, else phashfleet."""
    return os.environ.get(QUEUE_ENV) or DEFAULT_NAME


def run_names(run_id: str) -> dict[str, str]:
    """The environment that gives one local run (and its workers) a prefix and queue of its own."""
    name = f"{DEFAULT_NAME}-run-{run_id}"
    return {PREFIX_ENV: name, QUEUE_ENV: name}


def everything() -> str:
    """SCAN pattern matching every key under the prefix."""
    return f"{prefix()}:*"


def jobs() -> str:
    """The set of job ids with state in Redis."""
    return f"{prefix()}:jobs"


def job(job_id: str, part: str) -> str:
    """One of a job's keys: meta, counts, failures, inflight, leases."""
    return f"{prefix()}:job:{job_id}:{part}"


def job_ref(job_id: str) -> tuple[str, str]:
    """The PhashJob (namespace, name) a job id "<namespace>.<name>.<uid[:8]>" names.

    Ids are built by phashfleet_operator.reconcile.job_id (`phashfleet run`: namespace "local"). A
    namespace and the uid part have no dot; a PhashJob's name may have some. Metrics label a job with
    these two (`namespace`, `phashjob`), logs name it with them.
    """
    namespace, _, rest = job_id.partition(".")
    name, _, uid = rest.rpartition(".")
    if not (namespace and name and uid):
        raise ValueError(f"job id {job_id!r} is not <namespace>.<name>.<uid>")
    return namespace, name


def batch(job_id: str, batch_id: int) -> str:
    """The key holding one handed-out batch's file references."""
    return f"{prefix()}:job:{job_id}:batch:{batch_id}"


def batch_pattern(job_id: str) -> str:
    """SCAN pattern matching every batch key of a job."""
    return f"{prefix()}:job:{job_id}:batch:*"


def dramatiq_queue(name: str | None = None) -> str:
    """The Redis list Dramatiq keeps a queue's pending message ids in (this process's queue by default)."""
    return f"dramatiq:{name or queue()}"


def dramatiq_queue_patterns(name: str) -> list[str]:
    """SCAN patterns for all of Dramatiq's keys of one queue: pending, messages, delayed, dead, unacked."""
    return [dramatiq_queue(name), f"{dramatiq_queue(name)}.*", f"dramatiq:__acks__.*.{name}"]
