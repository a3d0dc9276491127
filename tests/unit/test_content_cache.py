"""The content cache in a result store (a folder and memory://): a record is served for an unchanged file, by
folder, until its TTL; a changed file is hashed again; expired cache files are swept, at most daily."""

from __future__ import annotations

import pytest

from phashfleet.results import make_record
from phashfleet.state.content_cache import CACHE_TTL_SECONDS, ContentCache, hash_with_cache

SETTINGS = {"algorithm": "phash", "hash_size": 8, "exact": False}


@pytest.fixture
def results(any_result_store):
    return any_result_store


class Hasher:
    """A hash_many that says which files it was asked to hash."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def __call__(self, refs: list[str]):
        self.asked += refs
        for ref in refs:
            yield make_record(ref, algorithm="phash", hash_size=8, status="ok", hash="ab" * 8, bytes=1)


def _files(tmp_path, names):
    folder = tmp_path / "photos"
    folder.mkdir(exist_ok=True)
    for name in names:
        (folder / name).write_bytes(name.encode())
    return [str(folder / n) for n in names], (str(folder),)


def test_a_second_batch_over_unchanged_files_hashes_only_the_changed_one(results, tmp_path):
    refs, roots = _files(tmp_path, ["a.jpg", "b.jpg", "c.jpg"])
    first = Hasher()
    assert [r.get("cached") for r in hash_with_cache(ContentCache(results), refs, SETTINGS, roots, first)] == [None] * 3
    assert first.asked == refs
    (tmp_path / "photos" / "b.jpg").write_bytes(b"changed, and longer")  # new size: a new key
    second = Hasher()
    got = {r["path"]: r for r in hash_with_cache(ContentCache(results), refs, SETTINGS, roots, second)}  # a new worker
    assert second.asked == [refs[1]]
    assert got[refs[0]]["cached"] is True and got[refs[2]]["cached"] is True and "cached" not in got[refs[1]]
    other = Hasher()  # other settings, other keys
    list(hash_with_cache(ContentCache(results), refs, {**SETTINGS, "hash_size": 16}, roots, other))
    assert other.asked == refs


def test_entries_are_served_until_their_ttl_and_swept_daily(results, tmp_path):
    cache = ContentCache(results)
    record = make_record("/p/a.jpg", algorithm="phash", hash_size=8, status="ok", hash="00" * 8)
    cache.remember([("/p/a.jpg", "k1", record)], now=1000.0)
    assert ContentCache(results).lookup({"/p/a.jpg": "k1"}, now=1000.0 + CACHE_TTL_SECONDS - 1) == {"/p/a.jpg": record}
    assert ContentCache(results).lookup({"/p/a.jpg": "k1"}, now=1000.0 + CACHE_TTL_SECONDS) == {}
    assert cache.sweep(now=1000.0 + CACHE_TTL_SECONDS) == 1
    cache.remember([("/p/b.jpg", "k2", record)], now=1000.0)
    assert cache.sweep(now=2000.0 + CACHE_TTL_SECONDS) == 0, "swept less than a day ago"
    assert ContentCache(results).lookup({"/p/b.jpg": "k2"}, now=1001.0) == {"/p/b.jpg": record}
