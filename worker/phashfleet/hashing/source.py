"""Open a file reference for reading: local paths confined to the allowed roots, others via fsspec."""

from __future__ import annotations

import errno
import io
import os
import stat
from contextlib import contextmanager
from dataclasses import dataclass
from contextlib import AbstractContextManager
from typing import BinaryIO, Iterator, Sequence

from phashfleet.access import OutsideRootsError, confine, is_local, remote_scheme_allowed
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
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
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


@contextmanager
def open_remote(ref: str) -> Iterator[Source]:
    """Read a remote object (s3://, http(s)://, ...) fully through fsspec into memory."""
    import fsspec

    if not remote_scheme_allowed(ref):
        raise FileFailed("unsupported_source", f"{ref!r}: only file, s3 and http(s) sources are read")

    try:
        with fsspec.open(ref, "rb") as remote:
            data = remote.read()
    except FileNotFoundError:
        raise FileFailed("not_found", f"{ref!r} does not exist") from None
    except PermissionError:
        raise FileFailed("permission_denied", f"cannot read {ref!r}") from None
    except (ImportError, ValueError) as exc:
        raise FileFailed("unsupported_source", f"{ref!r}: {exc}") from None
    except OSError as exc:
        raise _os_failure(exc, ref) from None
    yield Source(io.BytesIO(data), len(data), data[:HEAD_BYTES], None)


def open_source(ref: str, allowed_roots: Sequence[str]) -> AbstractContextManager[Source]:
    """Open ``ref`` for reading: confined local file or remote object."""
    return open_local(ref, allowed_roots) if is_local(ref) else open_remote(ref)
