"""Open a file reference for reading: local paths confined to the allowed roots, others via fsspec."""

from __future__ import annotations

import errno
import io
import os
import stat
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import BinaryIO, cast

from phashfleet.files.access import OutsideRootsError, confine, is_local, remote_scheme_allowed
from phashfleet.files.filesystems import url_to_fs
from phashfleet.files.listing import is_network_error  # the listing's rule, one place
from phashfleet.hashing.errors import FileFailed

#: Bytes read up front to recognise the file type.
HEAD_BYTES = 64


@dataclass
class Source:
    """An open file: a seekable binary stream, its size in bytes and its first bytes."""

    file: BinaryIO
    size: int
    head: bytes
    local_path: str | None


def _not_a_file(mode: int) -> str | None:
    """Name the kind of a non-regular file, or None for a regular one."""
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return name
    return None if stat.S_ISREG(mode) else "not a regular file"


def _os_failure(exc: OSError, ref: str) -> FileFailed:
    """Map an OSError from opening or reading to a coded failure."""
    if isinstance(exc, FileNotFoundError) or exc.errno == errno.ENOENT:
        return FileFailed("not_found", f"{ref!r} does not exist")
    if isinstance(exc, PermissionError) or exc.errno in (errno.EACCES, errno.EPERM):
        return FileFailed("permission_denied", f"cannot read {ref!r}")
    if isinstance(exc, IsADirectoryError):
        return FileFailed("not_a_file", f"{ref!r} is a directory")
    return FileFailed("read_error", f"{type(exc).__name__}: {exc}")


@contextmanager
def open_local(ref: str, allowed_roots: Sequence[str]) -> Iterator[Source]:
    """Open a local path after confining it; never blocks on a FIFO and never follows one out."""
    try:
        real = confine(ref, allowed_roots)
    except OutsideRootsError as exc:
        raise FileFailed("outside_roots", str(exc).split(": ", 1)[-1]) from None
    try:
        info = os.stat(real)
    except OSError as exc:
        raise _os_failure(exc, ref) from None
    kind = _not_a_file(info.st_mode)
    if kind:
        raise FileFailed("not_a_file", f"{ref!r} is {kind}")
    try:
        # O_NONBLOCK: if the path was swapped for a FIFO after the stat, open still returns at once.
        fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise _os_failure(exc, ref) from None
    try:
        info = os.fstat(fd)
        kind = _not_a_file(info.st_mode)
        if kind:
            raise FileFailed("not_a_file", f"{ref!r} is {kind}")
        file = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with file:
        try:
            head = file.read(HEAD_BYTES)
            file.seek(0)
        except OSError as exc:
            raise _os_failure(exc, ref) from None
        yield Source(file, info.st_size, head, real)


#: HTTP statuses that mean "try again later" (S3 throttling answers 503 SlowDown).
TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
#: Seconds before the first re-read of a remote file after a transient error; doubled on each retry.
FIRST_BACKOFF = 0.2
#: Longest pause between two reads of one file.
MAX_BACKOFF = 5.0


def http_status(exc: BaseException) -> int | None:
    """The HTTP status an aiohttp or botocore error carries (or the one s3fs translated into an OSError)."""
    for err in (exc, exc.__cause__):
        status = getattr(err, "status", None)
        if isinstance(status, int):
            return status
        response = getattr(err, "response", None)
        if isinstance(response, dict) and isinstance(
            code := response.get("ResponseMetadata", {}).get("HTTPStatusCode"), int
        ):
            return code
    return None


def is_transient(exc: BaseException) -> bool:
    """True for a read error that may pass by itself: a throttle, a server error, a dropped connection."""
    status = http_status(exc)
    if status is not None:
        return status in TRANSIENT_STATUSES
    return is_network_error(exc)


def _remote_failure(exc: BaseException, ref: str) -> FileFailed:
    """Map a remote read's error to a coded failure."""
    status = http_status(exc)
    if isinstance(exc, FileNotFoundError) or status in (404, 410):
        return FileFailed("not_found", f"{ref!r} does not exist")
    if isinstance(exc, PermissionError) or status in (401, 403):
        return FileFailed("permission_denied", f"cannot read {ref!r}")
    if isinstance(exc, (ImportError, ValueError)):
        return FileFailed("unsupported_source", f"{ref!r}: {exc}")
    if isinstance(exc, OSError) and status is None:
        return _os_failure(exc, ref)
    return FileFailed("read_error", f"{type(exc).__name__}: {exc}")


def read_remote(ref: str, retries: int = 0, budget: float = float("inf")) -> bytes:
    """Read a remote object whole, reading again after a transient error up to `retries` times.

    The pauses double from FIRST_BACKOFF; no retry starts once `budget` seconds have gone by.
    Raises FileFailed: at once for a permanent error (404, 403, ...), after the last try for a transient one.
    """
    started, attempt = time.monotonic(), 0
    while True:
        try:
            fs, path = url_to_fs(ref)
            return cast(bytes, fs.cat_file(path))  # one GET for http(s); s3fs adds its own retries of throttles
        except Exception as exc:  # noqa: BLE001 - every error is classified below, none escapes as a bug
            pause = min(FIRST_BACKOFF * 2**attempt, MAX_BACKOFF)
            if attempt == retries or not is_transient(exc) or time.monotonic() - started + pause > budget:
                failure = _remote_failure(exc, ref)
                if attempt:
                    failure = FileFailed(failure.code, f"{failure.detail} (gave up after {attempt + 1} attempts)")
                raise failure from None
        time.sleep(pause)  # backoff before this file's next read
        attempt += 1


@contextmanager
def open_remote(ref: str, retries: int = 0, budget: float = float("inf")) -> Iterator[Source]:
    """Read a remote object (s3://, http(s)://, ...) fully through fsspec into memory (see read_remote)."""
    if not remote_scheme_allowed(ref):
        raise FileFailed("unsupported_source", f"{ref!r}: only file, s3 and http(s) sources are read")
    data = read_remote(ref, retries, budget)
    yield Source(io.BytesIO(data), len(data), data[:HEAD_BYTES], None)


def open_source(
    ref: str, allowed_roots: Sequence[str], retries: int = 0, budget: float = float("inf")
) -> AbstractContextManager[Source]:
    """Open ``ref`` for reading: confined local file, or remote object read again after transient errors."""
    return open_local(ref, allowed_roots) if is_local(ref) else open_remote(ref, retries, budget)
