"""files.filesystems.url_to_fs gives what fsspec's own url_to_fs gives, for every kind of URL a source holds."""

from __future__ import annotations

import threading

import fsspec
import pytest

from phashfleet.files.filesystems import url_to_fs

URLS = [
    "memory://bucket/photo.jpg",
    "memory:///bucket/a b/é.png",
    "s3://bucket/folder/photo.jpg",
    "s3a://bucket/photo.jpg",
    "s3://bucket/photo.jpg?versionId=abc",  # options from the URL itself: fsspec's own way
    "https://example.org/photos/cat%201.jpg",
    "http://example.org:8080/a.png",
    "simplecache::memory://bucket/photo.jpg",  # a chain: fsspec's own way
]


@pytest.mark.parametrize("url", URLS)
def test_same_filesystem_and_path_as_fsspec(url):
    fs, path = url_to_fs(url)
    theirs, their_path = fsspec.core.url_to_fs(url)
    assert path == their_path
    assert type(fs) is type(theirs)
    assert fs.storage_options == theirs.storage_options
    if "::" not in url:
        assert fs is theirs  # the instance fsspec caches, not a copy


def test_each_thread_gets_its_own_as_from_fsspec():
    """fsspec keeps an instance per thread (an async filesystem's loop is the thread's): so does url_to_fs."""
    first, _ = url_to_fs("memory://a/b.jpg")
    assert url_to_fs("memory://c/d.jpg")[0] is first
    seen = []

    def in_a_thread() -> None:
        seen.extend([url_to_fs("memory://a/b.jpg")[0], fsspec.filesystem("memory")])

    thread = threading.Thread(target=in_a_thread)
    thread.start()
    thread.join()
    assert seen[0] is seen[1] and seen[0] is not first
