"""fsspec's url_to_fs for a file's URL, with the filesystem looked up once per protocol, thread and process.

fsspec finds a cached filesystem instance by hashing its class, process, thread and options on every
call: more than reading a tiny file costs. A plain URL (no options of its own, no `::` chain) of a
filesystem fsspec caches gets that same instance from here without the look-up; any other URL goes
through fsspec itself.
"""

from __future__ import annotations

import os
import threading
from typing import Any, cast

_local = threading.local()


def url_to_fs(url: str) -> tuple[Any, str]:
    """`fsspec.core.url_to_fs(url)`: the filesystem and the path in it."""
    import fsspec  # not at the top: importing the package should not import fsspec

    if "::" in url:
        return cast(tuple[Any, str], fsspec.core.url_to_fs(url))
    protocol = fsspec.core.split_protocol(url)[0] or "file"
    cls = fsspec.get_filesystem_class(protocol)
    if not cls.cachable or cls._get_kwargs_from_urls(url):
        return cast(tuple[Any, str], fsspec.core.url_to_fs(url))
    known: dict[tuple[str, int], Any] = _local.__dict__.setdefault("filesystems", {})
    key = (protocol, os.getpid())  # an instance made before a fork is not the child's
    fs = known.get(key)
    if fs is None:
        fs = known[key] = fsspec.filesystem(protocol)
    return fs, cls._strip_protocol(url)
