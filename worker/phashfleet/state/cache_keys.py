"""Content-cache keys for incremental re-runs: a changed file never maps to a stored hash.

A key covers the file's identity (its reference), its version as the storage reports it (size
plus mtime and ctime for local files; size plus ETag, else Last-Modified, for S3 and HTTP) and
every setting that changes the hash (algorithm, hash size, exact). A file whose storage reports
no version at all gets no key: it is always hashed afresh.

Bump KEY_VERSION whenever the hashing code could return a different hash for the same input,
so caches filled by an older worker are never read.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Mapping
from typing import Any, cast

from phashfleet.files.access import is_local, local_path
from phashfleet.files.filesystems import url_to_fs

#: Part of every key; change it to orphan every key made before.
KEY_VERSION = 1


def file_info(ref: str, storage_options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Return `{"size", "mtime", "ctime", "etag"}` of a file via fsspec `info` (None where unknown).

    Raises what the filesystem raises (FileNotFoundError, PermissionError, ...) for a file that
    cannot be looked at: the worker records those as failures.
    """
    if is_local(ref):
        return local_info(local_path(ref))
    if storage_options:
        import fsspec

        fs, path = fsspec.core.url_to_fs(ref, **dict(storage_options))
    else:
        fs, path = url_to_fs(ref)
    return normalize_info(fs.info(path))


def local_info(path: str) -> dict[str, Any]:
    """`file_info` of a local path from one stat (symlinks followed), as fsspec's local `info` would give it.

    A batch looks up every file before hashing; fsspec's info costs ~20x a stat, time the hashing
    process would spend waiting.
    """
    st = os.stat(path)
    regular = stat.S_ISREG(st.st_mode)
    return {
        "size": st.st_size,
        "mtime": _text(float(st.st_mtime)),
        "ctime": _text(float(st.st_ctime)) if regular else None,
        "etag": None,
    }


def normalize_info(info: Mapping[str, Any]) -> dict[str, Any]:
    """Pick the version fields out of a raw fsspec `info` dict (local, s3fs or HTTP spelling)."""
    if set(info) == {"size", "mtime", "ctime", "etag"}:
        return dict(info)  # already normalized
    etag = info.get("ETag") or info.get("etag") or info.get("e_tag")
    mtime = info.get("mtime")
    if mtime is None:
        mtime = info.get("LastModified") or info.get("Last-Modified") or info.get("last_modified")
    return {
        "size": info.get("size"),
        "mtime": _text(mtime),
        # Local files only: ctime changes on every write and cannot be set back, unlike mtime.
        "ctime": _text(info.get("created")) if info.get("type") == "file" and "ino" in info else None,
        "etag": None if etag is None else str(etag),
    }


def cache_key(ref: str, info: Mapping[str, Any], settings: Mapping[str, Any]) -> str | None:
    """Return the cache key (64 hex chars) for `ref` as `info` describes it, or None.

    Parameters:
      ref(str): the file reference as listed (path or URL); file:// and plain paths agree.
      info(dict): `file_info(ref)`, or a raw fsspec `info` dict.
      settings(dict): `algorithm`, `hash_size` (or `hashSize`) and `exact`.

    None means "do not cache": the storage gave neither an ETag nor a modification time.
    """
    version = normalize_info(info)
    if version["etag"] is None and version["mtime"] is None:
        return None
    hash_size = settings.get("hash_size", settings.get("hashSize"))
    if hash_size is None or "algorithm" not in settings:
        raise ValueError("cache_key settings need algorithm and hash_size")
    identity = os.path.normpath(local_path(ref)) if is_local(ref) else ref
    # An ETag names the content; a time only says when it last changed, so keep both with size.
    parts = [
        KEY_VERSION,
        identity,
        version["size"],
        version["etag"],
        None if version["etag"] is not None else version["mtime"],
        version["ctime"],
        str(settings["algorithm"]).lower(),
        int(hash_size),
        bool(settings.get("exact", False)),
    ]
    blob = json.dumps(parts, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass")
    return hashlib.sha256(blob).hexdigest()


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, float):
        return repr(value)  # every bit of the float: two different mtimes never print alike
    if hasattr(value, "isoformat"):
        return cast(str, value.isoformat())  # a date or datetime (the value is Any)
    return str(value)
