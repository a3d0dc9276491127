"""Incremental re-runs: serve unchanged files' records from the content cache in the result store, hash the rest.

The cache lives beside the parts, never in Redis (so Redis stays flat in the number of files ever hashed)::

    cache/<folder digest>/<written at, unix s>-<id>.jsonl   {"key": <cache key>, "record": {...}} per line

one file per batch and source folder, written once. A worker reads a folder's files the first time a batch
needs it and keeps them a while (`MEMO_SECONDS`): a batch's files mostly share a folder, so a batch costs one
listing and a few reads, not one lookup per file. An entry is served for CACHE_TTL_SECONDS after it was
written; a sweep (at most daily, from the collector) deletes older files.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from phashfleet.files.access import OutsideRootsError, confine, is_local
from phashfleet.state.cache_keys import cache_key, file_info
from phashfleet.state.result_store import ResultStore

#: How long a cached record is served: long enough for re-runs, short enough that the cache does not keep every
#: file ever hashed.
CACHE_TTL_SECONDS = 30 * 24 * 3600
#: Seconds a worker trusts what it read of a folder's cache (entries written since by others are missed, which
#: only means those files are hashed again).
MEMO_SECONDS = 600.0
#: Folders a worker keeps in memory at once.
MEMO_FOLDERS = 64
#: Seconds between sweeps of expired cache files.
SWEEP_EVERY = 24 * 3600

HashMany = Callable[[list[str]], Iterable[dict[str, Any]]]


def folder_of(ref: str) -> str:
    """The folder a file reference lies in (a path's directory, a URL's parent)."""
    return posixpath.dirname(ref.rstrip("/"))


def _digest(folder: str) -> str:
    return hashlib.sha1(folder.encode("utf-8", "surrogatepass")).hexdigest()


class ContentCache:
    """Records of files hashed before, keyed by cache key, stored per source folder in a result store."""

    def __init__(self, results: ResultStore, ttl_seconds: float = CACHE_TTL_SECONDS) -> None:
        self.results = results
        self.ttl_seconds = ttl_seconds
        self._memo: OrderedDict[str, tuple[float, dict[str, dict[str, Any]]]] = OrderedDict()

    def lookup(self, keys: dict[str, str], now: float | None = None) -> dict[str, dict[str, Any]]:
        """Cached records of the refs in `keys` (ref -> cache key) that have one, by ref."""
        now = time.time() if now is None else now
        hits: dict[str, dict[str, Any]] = {}
        for ref, key in keys.items():
            entry = self._folder(folder_of(ref), now).get(key)
            if entry is not None:
                hits[ref] = entry
        return hits

    def remember(self, entries: list[tuple[str, str, dict[str, Any]]], now: float | None = None) -> None:
        """Store (ref, cache key, record) entries: one file per folder they lie in."""
        now = time.time() if now is None else now
        by_folder: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        for ref, key, record in entries:
            by_folder.setdefault(folder_of(ref), []).append((key, record))
        for folder, items in by_folder.items():
            body = "".join(json.dumps({"key": k, "record": r}, separators=(",", ":")) + "\n" for k, r in items)
            name = f"{int(now)}-{uuid.uuid4().hex[:12]}.jsonl"
            self.results.put(("cache", _digest(folder), name), body.encode())
            memo = self._memo.get(folder)
            if memo is not None:
                memo[1].update(items)

    def _folder(self, folder: str, now: float) -> dict[str, dict[str, Any]]:
        memo = self._memo.get(folder)
        if memo is not None and now - memo[0] < MEMO_SECONDS:
            self._memo.move_to_end(folder)
            return memo[1]
        entries: dict[str, dict[str, Any]] = {}
        for name in self.results.names(("cache", _digest(folder))):
            written = _written_at(name)
            if written is None or now - written >= self.ttl_seconds:
                continue
            for line in self.results.get(("cache", _digest(folder), name)).splitlines():
                if line:
                    item = json.loads(line)
                    entries[item["key"]] = item["record"]
        self._memo[folder] = (now, entries)
        while len(self._memo) > MEMO_FOLDERS:
            self._memo.popitem(last=False)
        return entries

    def sweep(self, now: float | None = None) -> int:
        """Delete cache files older than the TTL, at most once per SWEEP_EVERY; return how many went."""
        now = time.time() if now is None else now
        try:
            last = float(self.results.get(("cache", "swept")))
        except (FileNotFoundError, ValueError):
            last = 0.0
        if now - last < SWEEP_EVERY:
            return 0
        self.results.put(("cache", "swept"), str(int(now)).encode())
        gone = 0
        for folder in self.results.names(("cache",)):
            for name in self.results.names(("cache", folder)):
                written = _written_at(name)
                if written is not None and now - written >= self.ttl_seconds:
                    self.results.remove(("cache", folder, name))
                    gone += 1
        return gone


def _written_at(name: str) -> float | None:
    stamp, dash, _ = name.partition("-")
    return float(stamp) if dash and stamp.isdigit() and name.endswith(".jsonl") else None


def _key(ref: str, settings: dict[str, Any], roots: tuple[str, ...]) -> str | None:
    try:
        if is_local(ref):
            confine(ref, roots)  # never even stat a file outside the roots
        return cache_key(ref, file_info(ref), settings)
    except (OSError, OutsideRootsError, ValueError):
        return None  # the hasher makes the failure record


def hash_with_cache(
    cache: ContentCache, refs: list[str], settings: dict[str, Any], roots: tuple[str, ...], hash_many: HashMany
) -> Iterator[dict[str, Any]]:
    """Yield a record per ref: cached ones first (marked `"cached": true`), then freshly hashed ones."""
    cache_keys = {ref: key for ref in refs if (key := _key(ref, settings, roots))}
    hits = cache.lookup(cache_keys)
    for ref in refs:
        if ref in hits:
            yield {**hits[ref], "cached": True}
    fresh: list[tuple[str, str, dict[str, Any]]] = []
    for record in hash_many([ref for ref in refs if ref not in hits]):
        key = cache_keys.get(record["path"])
        if key and record["status"] == "ok":
            fresh.append((record["path"], key, record))
        yield record
    if fresh:
        cache.remember(fresh)
