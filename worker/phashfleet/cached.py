"""Incremental re-runs: serve unchanged files' records from the content cache in Redis, hash the rest."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import redis

from phashfleet import keys
from phashfleet.access import OutsideRootsError, confine, is_local
from phashfleet.cache import cache_key, file_info

#: How long a cached record lives: long enough for re-runs, short enough that Redis does not keep every
#: file ever hashed.
CACHE_TTL_SECONDS = 30 * 24 * 3600

HashMany = Callable[[list[str]], Iterable[dict[str, Any]]]


def _key(ref: str, settings: dict[str, Any], roots: tuple[str, ...]) -> str | None:
    try:
        if is_local(ref):
            confine(ref, roots)  # never even stat a file outside the roots
        return cache_key(ref, file_info(ref), settings)
    except (OSError, OutsideRootsError, ValueError):
        return None  # the hasher makes the failure record


def hash_with_cache(client: redis.Redis, refs: list[str], settings: dict[str, Any], roots: tuple[str, ...],
                    hash_many: HashMany) -> Iterator[dict[str, Any]]:
    """Yield a record per ref: cached ones first (marked `"cached": true`), then freshly hashed ones."""
    cache_keys = {ref: _key(ref, settings, roots) for ref in refs}
    present = [ref for ref, key in cache_keys.items() if key]
    hits = dict(zip(present, client.mget([keys.cache(cache_keys[r]) for r in present]))) if present else {}
    misses = []
    for ref in refs:
        raw = hits.get(ref)
        if raw is None:
            misses.append(ref)
            continue
        record = json.loads(raw)
        record["cached"] = True
        yield record
    for record in hash_many(misses):
        key = cache_keys.get(record["path"])
        if key and record["status"] == "ok":
            client.set(keys.cache(key), json.dumps(record), ex=CACHE_TTL_SECONDS)
        yield record
