"""Listing on the data plane: shards of a source, listed apart, add up to exactly the one-pass listing."""

from __future__ import annotations

import itertools
import os

import pytest

from phashfleet.files.listing import SourceNetworkError, SourceNotFoundError, iter_source
from phashfleet.job import lister
from phashfleet.job.lister import ListingMap, ListingReader, ListPlan, iter_listing, list_here, list_shard
from phashfleet.state.memory_store import MemoryJobStore
from phashfleet.state.result_store import ResultStore

JOB = "ns.name.abcdef12"


def _tree(root):
    """Top files, 7 subfolders (some nested, one empty, one all excluded), a loop back to the top."""
    for name in ("top1.jpg", "top2.png", "notes.txt"):
        (root / name).write_bytes(b"x")
    for d in range(7):
        sub = root / f"d{d}"
        (sub / "deep").mkdir(parents=True)
        if d == 3:
            continue  # empty but for an empty folder
        for i in range(d + 1):
            (sub / f"{i}.jpg").write_bytes(b"x")
        (sub / "deep" / "z.jpg").write_bytes(b"x")
    (root / "skip" / "inner").mkdir(parents=True)
    (root / "skip" / "inner" / "s.jpg").write_bytes(b"x")
    os.symlink(root, root / "d1" / "back-to-top")


def _list(tmp_path, source, chunk=3):
    store, results = MemoryJobStore(), ResultStore(str(tmp_path / "results"))
    store.create(JOB, {"batch_size": chunk}, 0)
    total = list_here(store, results, JOB, ListPlan(source, chunk), allowed_roots=(str(tmp_path),))
    mapping = ListingMap.of(store.listing(JOB), chunk)
    return store, results, total, mapping


@pytest.mark.parametrize("max_shards", [1, 2, 3, 32])
def test_shards_listed_apart_are_the_one_pass_listing_in_order(tmp_path, monkeypatch, max_shards):
    root = tmp_path / "src"
    root.mkdir()
    _tree(root)
    monkeypatch.setattr(lister, "MAX_SHARDS", max_shards)
    source = {"uri": str(root), "exclude": ["skip/**"], "files": ["d2/0.jpg", str(root / "extra.jpg")]}
    store, results, total, mapping = _list(tmp_path, source)
    expected = list(iter_source(source, (str(tmp_path),)))
    got = list(iter_listing(results, JOB, store.snapshot(JOB).epoch, mapping))
    assert got == expected and total == len(expected) == store.snapshot(JOB).total
    assert store.listing(JOB).shards == min(max_shards, 9), "shard 0 plus at most one per top-level subfolder (8)"
    assert not any("back-to-top" in ref for ref in got), "a loop back to the top is not walked"


def test_a_single_file_source_and_a_files_list_only_source_are_one_shard(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"x")
    for source in ({"uri": str(tmp_path / "a.jpg")}, {"files": [str(tmp_path / "a.jpg"), str(tmp_path / "b.jpg")]}):
        store, results, total, mapping = _list(tmp_path, source)
        assert list(iter_listing(results, JOB, store.snapshot(JOB).epoch, mapping)) == list(
            iter_source(source, (str(tmp_path),))
        )
        assert store.listing(JOB).shards == 1


def test_segments_name_every_position_once_in_order_across_shards_and_chunks():
    shards = [(0, "t0"), (7, "t1"), (1, "t2"), (0, "t3"), (12, "t4")]
    mapping = ListingMap(shards, chunk=4)
    names = {s: [f"{s}/{i}" for i in range(n)] for s, (n, _) in enumerate(shards)}

    class Chunks:
        def get(self, path):  # the reader's only call on the result store
            shard, token = path[4].split("-")
            number = int(path[5].split(".")[0])
            lines = names[int(shard)][number * 4 : number * 4 + 4]
            assert token == shards[int(shard)][1]
            return "".join(f'"{n}"\n' for n in lines).encode()

    reader = ListingReader(Chunks())  # type: ignore[arg-type]  # a stand-in with the one method the reader calls
    everything = [n for s in range(len(shards)) for n in names[s]]
    for size in (1, 3, 4, 5, 20, 100):
        got = []
        for start in range(0, mapping.total, size):
            segments, count = mapping.take(start, size)
            files = reader.files(JOB, "e", segments)
            assert len(files) == count == min(size, mapping.total - start)
            got += files
        assert got == everything
    assert mapping.take(mapping.total, 5) == ([], 0)


def test_a_second_lister_of_a_shard_changes_nothing(tmp_path):
    root = tmp_path / "src"
    (root / "d").mkdir(parents=True)
    for i in range(5):
        (root / "d" / f"{i}.jpg").write_bytes(b"x")
    store, results, total, mapping = _list(tmp_path, {"uri": str(root)})
    assert list_shard(
        store, results, JOB, 1, ListPlan({"uri": str(root)}, 3), allowed_roots=(str(tmp_path),)
    ).startswith("dropped")
    (root / "d" / "new.jpg").write_bytes(b"x")  # a late lister would see more; its report would not count
    assert store.snapshot(JOB).total == total == 5


def test_a_source_that_cannot_be_listed_is_kept_as_the_shards_error(tmp_path, monkeypatch):
    store, results = MemoryJobStore(), ResultStore(str(tmp_path / "results"))
    store.create(JOB, {}, 0)
    with pytest.raises(SourceNotFoundError):
        list_shard(store, results, JOB, 0, ListPlan({"uri": str(tmp_path / "nope")}, 3), allowed_roots=(str(tmp_path),))
    error = store.listing(JOB).errors[0]
    assert error["reason"] == "SourceNotFound" and not error["transient"] and "nope" in error["message"]

    def unreachable(*args, **kwargs):
        raise SourceNetworkError("http://x/", "ConnectionError: refused")

    monkeypatch.setattr(lister, "split_source", unreachable)
    store.listing_sent(JOB, 0, 0.0)
    with pytest.raises(SourceNetworkError):
        list_shard(store, results, JOB, 0, ListPlan({"uri": "http://x/"}, 3), allowed_roots=())
    assert store.listing(JOB).errors[0]["transient"]


def test_chunks_hold_names_a_line_could_not(tmp_path):
    root = tmp_path / "src"
    root.mkdir()
    odd = ["new\nline.jpg", 'quote".jpg', "ünï.jpg"]
    for name in odd:
        (root / name).write_bytes(b"x")
    store, results, total, mapping = _list(tmp_path, {"uri": str(root), "include": []})
    got = list(iter_listing(results, JOB, store.snapshot(JOB).epoch, mapping))
    assert sorted(os.path.basename(p) for p in got) == sorted(odd) and total == 3
    assert list(itertools.islice(got, 1)) == [str(root / sorted(odd)[0])]
