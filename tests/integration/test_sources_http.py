"""HTTP sources against a real http.server on a loopback port: folder pages, file reads, errors."""

from __future__ import annotations

import functools
import itertools
import os
from http.server import SimpleHTTPRequestHandler
from pathlib import Path

import pytest

from harness.outage import serving
from harness.ports import free_port
from phashfleet.files.listing import (
    SourceNetworkError,
    SourceNotFoundError,
    SourcePermissionError,
    iter_source,
)
from phashfleet.state.cache_keys import cache_key, file_info

fsspec = pytest.importorskip("fsspec")
if os.environ.get("CI", "").lower() not in ("1", "true", "yes"):
    pytest.importorskip("aiohttp", reason="not in CI and aiohttp (the http extra) is missing")
else:
    import aiohttp  # noqa: F401 - in CI a missing extra must fail

SETTINGS = {"algorithm": "dhash", "hash_size": 16, "exact": True}


class Handler(SimpleHTTPRequestHandler):
    """Serves a folder with listings, plus /forbidden/ (403) and /broken/ (500)."""

    def do_GET(self):
        for prefix, code in (("/forbidden", 403), ("/broken", 500)):
            if self.path.startswith(prefix):
                self.send_error(code)
                return
        super().do_GET()

    do_HEAD = do_GET  # noqa: N815 - http.server dispatches on the method's name, do_<METHOD>

    def log_message(self, *args):
        pass


@pytest.fixture
def site(tmp_path: Path):
    root = tmp_path / "www"
    root.mkdir()
    with serving(functools.partial(Handler, directory=str(root))) as (_, base):
        yield root, base


def touch(root: Path, *names: str) -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(name.encode())


def test_lists_folder_pages_in_order_and_files_read_back(site):
    root, base = site
    names = [
        "pics/z.jpg",
        "pics/A.JPG",
        "pics/readme.txt",
        "pics/m/2.png",
        "pics/m/1.png",
        "pics/m/deep/x.webp",
        "pics/sp ace/é ü.jpg",
        "pics/100%.jpg",
        "pics/hash#tag.jpg",
        "top.jpg",
    ]
    touch(root, *names)
    refs = list(iter_source({"uri": f"{base}/pics/"}, []))
    fs = fsspec.filesystem("http", skip_instance_cache=True)
    contents = [fs.cat(ref).decode() for ref in refs]
    assert contents == [
        "pics/100%.jpg",
        "pics/A.JPG",
        "pics/hash#tag.jpg",
        "pics/z.jpg",
        "pics/m/1.png",
        "pics/m/2.png",
        "pics/m/deep/x.webp",
        "pics/sp ace/é ü.jpg",
    ]
    assert all(ref.startswith(f"{base}/pics/") for ref in refs)


def test_globs_see_decoded_names(site):
    root, base = site
    touch(root, "pics/sp ace/é ü.jpg", "pics/sp ace/other.jpg", "pics/skip me/a.jpg", "pics/b.JPG")
    refs = list(iter_source({"uri": f"{base}/pics/", "include": ["**/É*.jpg", "*.jpg"], "exclude": ["skip me/**"]}, []))
    assert [fsspec.filesystem("http").cat(r).decode() for r in refs] == ["pics/b.JPG", "pics/sp ace/é ü.jpg"]


def test_uri_without_slash_lists_and_file_uri_yields_itself(site):
    root, base = site
    touch(root, "pics/a.jpg", "pics/d/b.jpg")
    assert list(iter_source({"uri": f"{base}/pics"}, [])) == [f"{base}/pics/a.jpg", f"{base}/pics/d/b.jpg"]
    assert list(iter_source({"uri": f"{base}/pics/a.jpg"}, [])) == [f"{base}/pics/a.jpg"]
    assert list(iter_source({"uri": f"{base}/pics/", "files": ["d/b.jpg"]}, [])) == [
        f"{base}/pics/d/b.jpg",
        f"{base}/pics/a.jpg",
    ]


def test_only_links_below_the_folder_are_followed(site):
    root, base = site
    touch(root, "g/a.jpg", "g/sub/b.jpg", "outside.jpg")
    # A hand-written index page (http.server serves it instead of a listing) with every kind of
    # link that must not be walked: parent, absolute elsewhere, other host, self, query, anchor.
    links = [
        "a.jpg",
        "sub/",
        "../outside.jpg",
        "../",
        "/outside.jpg",
        "http://example.invalid/x.jpg",
        "./",
        f"{base}/g/",
        "?C=N;O=D",
        "#top",
        "sub/../a.jpg",
    ]
    (root / "g" / "index.html").write_text("".join(f'<a href="{link}">{link}</a>\n' for link in links))
    refs = list(iter_source({"uri": f"{base}/g/"}, []))
    assert refs == [f"{base}/g/a.jpg", f"{base}/g/sub/b.jpg"]


def test_listing_resumes_by_skip(site):
    root, base = site
    touch(root, *(f"r/{d}/{i}.jpg" for d in "xyz" for i in range(3)), "r/0.jpg")
    source = {"uri": f"{base}/r/"}
    full = list(iter_source(source, []))
    assert len(full) == 10
    for n in (0, 3, 9, 10):
        assert list(itertools.islice(iter_source(source, []), n, None)) == full[n:]


def test_errors_name_their_cause(site):
    _, base = site
    with pytest.raises(SourceNotFoundError, match="nope"):
        list(iter_source({"uri": f"{base}/nope/"}, []))
    with pytest.raises(SourceNotFoundError):
        list(iter_source({"uri": f"{base}/nope"}, []))
    with pytest.raises(SourcePermissionError, match="forbidden"):
        list(iter_source({"uri": f"{base}/forbidden/"}, []))
    with pytest.raises(SourceNetworkError, match="broken"):
        list(iter_source({"uri": f"{base}/broken/"}, []))
    with pytest.raises(SourceNetworkError, match="Cannot connect") as info:
        list(iter_source({"uri": f"http://127.0.0.1:{free_port()}/x/"}, []))
    assert info.value.reason == "SourceUnreachable"


def test_cache_key_follows_size_and_last_modified(site):
    root, base = site
    touch(root, "k.jpg")
    ref = f"{base}/k.jpg"
    info = file_info(ref)
    assert info["size"] == len(b"k.jpg") and info["mtime"]
    key = cache_key(ref, info, SETTINGS)
    assert cache_key(ref, file_info(ref), SETTINGS) == key
    stat = os.stat(root / "k.jpg")
    os.utime(root / "k.jpg", (stat.st_atime, stat.st_mtime + 5))  # same bytes, touched
    assert cache_key(ref, file_info(ref), SETTINGS) != key
