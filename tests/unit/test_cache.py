"""Content-cache keys: any change to a file or to the hash settings gives a new key."""

from __future__ import annotations

import datetime as dt
import os
import time

import pytest

from phashfleet.state.cache_keys import cache_key, file_info, local_info, normalize_info

SETTINGS = {"algorithm": "phash", "hash_size": 8, "exact": False}


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "a photo é.jpg"
    path.write_bytes(b"0123456789")
    return path


def key(path, settings=SETTINGS):
    return cache_key(str(path), file_info(str(path)), settings)


def test_key_is_stable_and_the_same_for_path_and_file_url(photo):
    first = key(photo)
    assert len(first) == 64 and int(first, 16) >= 0
    assert key(photo) == first
    assert cache_key(f"file://{photo}", file_info(f"file://{photo}"), SETTINGS) == first
    assert cache_key(str(photo), file_info(str(photo)), {"algorithm": "PHASH", "hashSize": 8}) == first


def test_local_info_has_size_and_times(photo):
    info = file_info(str(photo))
    assert info["size"] == 10 and info["mtime"] and info["ctime"] and info["etag"] is None


def test_any_setting_that_changes_the_hash_changes_the_key(photo):
    seen = {key(photo)}
    for change in ({"algorithm": "dhash"}, {"hash_size": 16}, {"exact": True}):
        seen.add(key(photo, {**SETTINGS, **change}))
    assert len(seen) == 4


def test_a_changed_file_never_keeps_its_key(photo, tmp_path):
    original = key(photo)
    stat = os.stat(photo)
    photo.write_bytes(b"01234567890")  # size changes
    assert key(photo) != original
    deadline = time.monotonic() + 5
    while True:  # rewrite until the kernel's coarse clock has ticked past the original ctime
        photo.write_bytes(b"9876543210")  # same size as the original...
        os.utime(photo, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # ...and its mtime set back
        if os.stat(photo).st_ctime_ns != stat.st_ctime_ns:
            break
        assert time.monotonic() < deadline, "ctime never moved"
    assert file_info(str(photo))["mtime"] == normalize_info({"mtime": stat.st_mtime, "size": 10})["mtime"]
    assert key(photo) != original  # ctime moved on, and it cannot be set back
    other = tmp_path / "other.jpg"
    other.write_bytes(b"0123456789")
    assert key(other) != original  # same content elsewhere: another path, another key


def test_s3_style_info_is_keyed_by_etag_not_time():
    when = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    raw = {"name": "b/k.jpg", "size": 5, "type": "file", "ETag": '"abc"', "LastModified": when}
    first = cache_key("s3://b/k.jpg", raw, SETTINGS)
    assert cache_key("s3://b/k.jpg", {**raw, "LastModified": when + dt.timedelta(hours=1)}, SETTINGS) == first
    assert cache_key("s3://b/k.jpg", {**raw, "ETag": '"abd"'}, SETTINGS) != first
    assert cache_key("s3://b/k2.jpg", raw, SETTINGS) != first


def test_http_style_info_uses_last_modified_when_there_is_no_etag():
    raw = {"name": "http://h/k.jpg", "size": 5, "type": "file", "Last-Modified": "Mon, 23 Nov 2026 18:20:21 GMT"}
    first = cache_key("http://h/k.jpg", raw, SETTINGS)
    assert first is not None
    assert cache_key("http://h/k.jpg", {**raw, "Last-Modified": "Mon, 23 Nov 2026 18:20:22 GMT"}, SETTINGS) != first
    assert cache_key("http://h/k.jpg", {**raw, "size": 6}, SETTINGS) != first


def test_no_version_means_no_key():
    assert cache_key("http://h/k.jpg", {"name": "http://h/k.jpg", "size": 5, "type": "file"}, SETTINGS) is None


def test_settings_must_name_algorithm_and_size(photo):
    with pytest.raises(ValueError, match="algorithm and hash_size"):
        cache_key(str(photo), file_info(str(photo)), {"exact": True})


def test_missing_file_raises(tmp_path):
    with pytest.raises(FileNotFoundError):
        file_info(str(tmp_path / "gone.jpg"))


def test_local_info_matches_fsspecs_own_for_files_links_and_folders(photo, tmp_path):
    import fsspec

    link = tmp_path / "link.jpg"
    link.symlink_to(photo)
    local = fsspec.filesystem("file")
    for path in (photo, link, tmp_path):
        assert local_info(str(path)) == normalize_info(local.info(str(path))), path
