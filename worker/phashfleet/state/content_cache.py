"""Incremental re-runs: serve unchanged files' records from the content cache in Redis, hash the rest."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import redis

from phashfleet.files.access import OutsideRootsError, confine, is_local
from phashfleet.state import keys
from phashfleet.state.cache_keys import cache_key, file_info

#: How long a cached record lives: long enough for re-runs, short enough that Redis does not keep every
#: file ever hashed.
CACHE_TTL_SECONDS = 30 * 24 * 3600
#: Cache entries written to Redis together (a lost chunk only means those files are hashed again next time).
CACHE_WRITE_CHUNK = 32

HashMany = Callable[[list[str]], Iterable[dict[str, Any]]]


def _key(ref: str, settings: dict[str, Any], roots: tuple[str, ...]) -> str | None:
    try:
        if is_local(ref):
            confine(ref, roots)  # never even stat a file outside the roots
        return cache_key(ref, file_info(ref), settings)
    except (OSError, OutsideRootsError, ValueError):
        return None  # the hasher makes the failure record


def hash_with_cache(
    client: redis.Redis, refs: list[str], settings: dict[str, Any], roots: tuple[str, ...], hash_many: HashMany
) -> Iterator[dict[str, Any]]:
    """Yield a record per ref: cached ones first (marked `"cached": true`), then freshly hashed ones."""
    cache_keys = {ref: _key(ref, settings, roots) for ref in refs}
    present = {ref: key for ref, key in cache_keys.items() if key}
    hits = (
        dict(zip(present, client.mget([keys.cache(key) for key in present.values()]), strict=False)) if present else {}
    )
    misses = []
    for ref in refs:
        raw = hits.get(ref)
        if raw is None:
            misses.append(ref)
            continue
        record = json.loads(raw)
        record["cached"] = True
        yield record
    remember = client.pipeline(transaction=False)  # one round trip per CACHE_WRITE_CHUNK records, not per file
    for record in hash_many(misses):
        key = cache_keys.get(record["path"])
        if key and record["status"] == "ok":
            remember.set(keys.cache(key), json.dumps(record), ex=CACHE_TTL_SECONDS)
            if len(remember) >= CACHE_WRITE_CHUNK:
                remember.execute()
        yield record
    if len(remember):
        remember.execute()
