"""The URL schemes phash-fleet reads and writes, and the storage each names: the one list of them."""

from __future__ import annotations

import os

#: A plain path ("" : no scheme) or file://.
LOCAL = ("", "file")
#: S3 and its Hadoop spelling, both read with s3fs.
S3 = ("s3", "s3a")
#: Web servers' directory pages and files (read only).
HTTP = ("http", "https")
#: What a worker opens besides local files (PHASHFLEET_EXTRA_SCHEMES may add more, see files.access).
REMOTE = S3 + HTTP
#: Every scheme a PhashJob's source may use.
ALL = LOCAL + REMOTE
#: Comma-separated fsspec protocols an operator admin allows besides ALL (a test filesystem, say), for
#: sources only: listed with the generic fsspec walker and opened by workers (see files.access).
EXTRA_ENV = "PHASHFLEET_EXTRA_SCHEMES"
#: How messages name them.
HINT = "use file://, s3:// or http(s)://"


def scheme_of(ref: str) -> str:
    """The lower-case scheme of a URL, '' for a plain path."""
    return ref.split("://", 1)[0].lower() if "://" in ref else ""


def is_s3(ref: str) -> bool:
    """True for an s3:// (or s3a://) URL."""
    return scheme_of(ref) in S3


def is_http(ref: str) -> bool:
    """True for an http:// or https:// URL."""
    return scheme_of(ref) in HTTP


def extra() -> tuple[str, ...]:
    """The source schemes PHASHFLEET_EXTRA_SCHEMES allows besides ALL (none unless set)."""
    return tuple(s.strip().lower() for s in os.environ.get(EXTRA_ENV, "").split(",") if s.strip())
