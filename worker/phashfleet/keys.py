"""Every Redis key phash-fleet uses, built from one prefix.

Layout (``P`` is the prefix, ``phashfleet`` by default; ``J`` is ``P:job:<job id>``)::

    P:jobs                  set    ids of jobs that have state in Redis
    J:meta                  hash   settings (JSON), listed, next_batch, listing_done, total, epoch
    J:results               hash   path -> record JSON; written set-if-absent, so a file lands once
    J:counts                hash   ok / failed / skipped; bumped only when a record is new
    J:failures              list   the first 20 failed records (path, reason)
    J:inflight              zset   batch id -> time it was handed out (not yet done)
    J:leases                zset   batch id -> lease deadline, while a worker is hashing it
    J:batch:<id>            string JSON list of the batch's file references (deleted when done)
    P:cache:<key>           string a content-cache record (see phashfleet.cache), with a TTL

Dramatiq's own keys live under its ``dramatiq:`` namespace (queue ``dramatiq:phashfleet``).
Multi-key changes run as Lua scripts in ``phashfleet/lua/``.
"""

from __future__ import annotations

import os

PREFIX = os.environ.get("PHASHFLEET_KEY_PREFIX", "phashfleet")
#: The Dramatiq queue every batch goes through.
QUEUE = "phashfleet"


def jobs() -> str:
    """The set of job ids with state in Redis."""
    return f"{PREFIX}:jobs"


def job(job_id: str, part: str) -> str:
    """One of a job's keys: meta, results, counts, failures, inflight, leases."""
    return f"{PREFIX}:job:{job_id}:{part}"


def batch(job_id: str, batch_id: int) -> str:
    """The key holding one handed-out batch's file references."""
    return f"{PREFIX}:job:{job_id}:batch:{batch_id}"


def batch_pattern(job_id: str) -> str:
    """SCAN pattern matching every batch key of a job."""
    return f"{PREFIX}:job:{job_id}:batch:*"


def cache(key: str) -> str:
    """A content-cache entry."""
    return f"{PREFIX}:cache:{key}"


def dramatiq_queue(queue: str = QUEUE) -> str:
    """The Redis list Dramatiq keeps a queue's pending message ids in."""
    return f"dramatiq:{queue}"
