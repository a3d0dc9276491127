"""List a PhashJob's source as a stream of file references, in a fixed, resumable order.

`iter_source` yields the `files` entries first, then every file under `uri` that the include
globs match and the exclude globs do not. The walk holds one directory's listing at a time
(plus the not-yet-visited subdirectory names of its ancestors), never the whole source: within a
directory, files come first in sorted order, then each subdirectory in sorted order. The same
tree always yields the same sequence, so a listing is resumed with
``itertools.islice(iter_source(...), n, None)``.

Local sources (plain paths and ``file://``) are confined to the allowed roots; they yield plain
absolute paths. ``s3://`` yields ``s3://bucket/key`` URLs and ``http(s)://`` the absolute URLs
that the directory pages link to. A file that cannot be read (a symlink leaving the roots, a
FIFO, a dangling link) is still yielded: the worker turns it into a `failed` record, so every
listed file is accounted for. Only directories are pruned: symlinked ones that leave the roots,
and ones that would close a symlink loop.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast
from urllib.parse import unquote, urlsplit

from phashfleet.files import schemes
from phashfleet.files.access import OutsideRootsError, allowed_roots_from_env, confine, is_local, local_path
from phashfleet.job.spec import spec_default

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

log = logging.getLogger(__name__)
T = TypeVar("T")

#: What a source that names no `include` lists: the CRD's default for spec.source.include (common
#: image and video extensions, each one that hashing.filetypes knows).
DEFAULT_INCLUDE: tuple[str, ...] = tuple(spec_default("source.include"))

#: Called with (directory reference, error) for a subdirectory the walk could not enter.
ErrorHandler = Callable[[str, Exception], None]


class SourceError(Exception):
    """A source cannot be listed; `reason` is a short CamelCase code for a status condition."""

    reason = "SourceError"

    def __init__(self, uri: str, detail: str) -> None:
        super().__init__(f"source {uri!r}: {detail}" if uri else f"source: {detail}")
        self.uri = uri
        self.detail = detail


class SourceSpecError(SourceError, ValueError):
    """The source spec itself is unusable: no uri or files, an unknown scheme, a missing extra."""

    reason = "InvalidSource"


class SourceNotFoundError(SourceError):
    """The source uri does not exist (missing folder, bucket or prefix; HTTP 404)."""

    reason = "SourceNotFound"


class SourcePermissionError(SourceError):
    """The source exists but may not be read (file mode, S3 access denied, HTTP 401/403)."""

    reason = "SourcePermissionDenied"


class SourceOutsideRootsError(SourcePermissionError):
    """A local source uri lies outside every allowed source root."""

    reason = "SourceOutsideRoots"


class SourceNetworkError(SourceError):
    """The source's server could not be reached or answered with a server error."""

    reason = "SourceUnreachable"


def iter_source(
    source: Mapping[str, Any],
    allowed_roots: Sequence[str] | None = None,
    *,
    storage_options: Mapping[str, Any] | None = None,
    on_error: ErrorHandler | None = None,
) -> Iterator[str]:
    """Yield the file references of a PhashJob `spec.source`, streaming and in a fixed order.

    Parameters:
      source(dict): `uri`, `include` (None: DEFAULT_INCLUDE; []: every file), `exclude`, `files`.
      allowed_roots(list[str]): local roots a local uri must lie in; None reads
        PHASHFLEET_ALLOWED_ROOTS.
      storage_options(dict): extra fsspec options for remote filesystems (e.g. `endpoint_url`).
      on_error(callable): told about subdirectories that could not be entered; default logs.

    `files` entries skip the globs and are not confined here (the worker refuses, as a failed
    record, one outside the roots); relative ones hang off `uri`; a file listed under `uri` too
    is yielded once.

    Raises SourceError (a subclass naming the cause) at the call when the uri itself cannot be
    listed; a network failure part-way through a remote walk raises SourceNetworkError.
    """
    head, walker, matcher, listed = _open_source(source, allowed_roots, storage_options)
    return _iter(head, walker, matcher, listed, on_error or _log_error, None)


@dataclass(frozen=True)
class SourceSplit:
    """How one source's listing is cut into shards that can be listed apart and concatenated in order.

    Shard 0 is the files list and the top folder's own files; shard i (1..len(groups)) walks the top
    folder's subfolders `groups[i - 1]`, in order. Shard 0, then 1, 2, ... yields what `iter_source` yields.
    """

    groups: tuple[tuple[str, ...], ...]


def split_source(
    source: Mapping[str, Any],
    allowed_roots: Sequence[str] | None = None,
    *,
    max_shards: int,
    storage_options: Mapping[str, Any] | None = None,
) -> tuple[Iterator[str], SourceSplit]:
    """List the top of a source once: return shard 0 as a stream, and at most `max_shards - 1` groups of subfolders.

    The groups are runs of consecutive subfolders, as even in number as they can be. Raises SourceError
    as `iter_source` does.
    """
    head, walker, matcher, listed = _open_source(source, allowed_roots, storage_options)
    subdirs = walker.top_subdirs() if walker is not None else []
    shards = max(0, min(len(subdirs), max_shards - 1))
    groups = tuple(tuple(subdirs[i * len(subdirs) // shards : (i + 1) * len(subdirs) // shards]) for i in range(shards))
    # No groups: shard 0 walks everything (subdirs None), else only the top folder's own files.
    return _iter(head, walker, matcher, listed, _log_error, () if groups else None), SourceSplit(groups)


def iter_shard(
    source: Mapping[str, Any],
    subdirs: Sequence[str],
    allowed_roots: Sequence[str] | None = None,
    *,
    storage_options: Mapping[str, Any] | None = None,
    on_error: ErrorHandler | None = None,
) -> Iterator[str]:
    """Yield the files under the top folder's `subdirs` (one group of `split_source`), in `iter_source`'s order."""
    _, walker, matcher, listed = _open_source(source, allowed_roots, storage_options)
    if walker is None or not subdirs:
        return iter(())
    return _iter([], walker, matcher, listed, on_error or _log_error, tuple(subdirs))


def _open_source(
    source: Mapping[str, Any], allowed_roots: Sequence[str] | None, storage_options: Mapping[str, Any] | None
) -> tuple[list[str], _Walker | None, GlobMatcher, set[str]]:
    """The files list resolved (and as a set), the primed walker over `uri` (None without one), the globs."""
    uri = source.get("uri") or None
    files = [str(f) for f in source.get("files") or ()]
    if uri is None and not files:
        raise SourceSpecError("", "needs a uri or a files list")
    roots = tuple(allowed_roots) if allowed_roots is not None else allowed_roots_from_env()
    matcher = GlobMatcher(source.get("include"), source.get("exclude") or ())
    # Lists the top folder before anything is yielded, so a bad uri fails here, not mid-stream.
    walker = _walker_for(str(uri), roots, dict(storage_options or {})).prime() if uri else None
    # The spec's own files list is already in memory; the set of it adds nothing that grows
    # with the size of the source.
    head = list(dict.fromkeys(_resolve_entry(entry, uri) for entry in files))
    return head, walker, matcher, set(head)


def _iter(
    head: list[str],
    walker: _Walker | None,
    matcher: GlobMatcher,
    listed: set[str],
    on_error: ErrorHandler,
    subdirs: tuple[str, ...] | None,
) -> Iterator[str]:
    """`head`, then the walk's files not in `listed`: all of it (subdirs None), the top's files only
    (subdirs empty), or only the files under those top subfolders."""
    yield from head
    if walker is not None:
        for ref in walker.walk(matcher, on_error, subdirs=subdirs):
            if ref not in listed:
                yield ref


def _resolve_entry(entry: str, uri: str | None) -> str:
    """A files-list entry as a reference: local URLs become paths, relative ones hang off uri."""
    if not is_local(entry):
        return entry
    path = local_path(entry)
    if os.path.isabs(path):
        return os.path.normpath(path)
    if uri and not is_local(uri):
        return uri.rstrip("/") + "/" + path
    return os.path.normpath(os.path.abspath(os.path.join(local_path(uri) if uri else "", path)))


def _log_error(ref: str, exc: Exception) -> None:
    log.warning("source walk skipped %r: %s", ref, exc)


class GlobMatcher:
    """Case-insensitive include/exclude globs on '/'-separated paths relative to the source uri.

    `**/` matches zero or more folders, so `**/*.jpg` matches `a.jpg` as well as `x/y/a.jpg`.
    """

    def __init__(self, include: Sequence[str] | None, exclude: Sequence[str]) -> None:
        from fsspec.utils import glob_translate

        include = DEFAULT_INCLUDE if include is None else tuple(include)
        self._include = _any_of([glob_translate(p) for p in include]) if include else None
        self._exclude = _any_of([glob_translate(p) for p in exclude]) if exclude else None
        # A folder matching the part before a trailing "/**" of an exclude has every file under
        # it excluded, so the walk need not enter it.
        prefixes = [p[: -len("/**")] for p in exclude if p.endswith("/**") and len(p) > 3]
        self._prune = _any_of([glob_translate(p) for p in prefixes]) if prefixes else None

    def wants_file(self, rel: str) -> bool:
        """True when the file at relative path `rel` is included and not excluded."""
        if self._include is not None and not self._include.match(rel):
            return False
        return not (self._exclude is not None and self._exclude.match(rel))

    def prunes_dir(self, rel: str) -> bool:
        """True when every file under folder `rel` is excluded."""
        return self._prune is not None and bool(self._prune.match(rel))


def _any_of(patterns: list[str]) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)


# --- walking ---------------------------------------------------------------------------------


class _Lister(Protocol):
    def listdir(self, path: str) -> tuple[list[str], list[str]]:
        """Sorted (file names, subfolder names) of one folder, names as the server spells them."""

    def enter(self, path: str) -> object | None:
        """A loop-detection key for a subfolder about to be walked, None to skip it, or raise."""

    def file_path(self, path: str, name: str) -> str:
        """The path of file `name` in folder `path`."""

    def dir_path(self, path: str, name: str) -> str:
        """The path of subfolder `name` in folder `path`."""

    def ref(self, path: str) -> str:
        """The reference a worker opens for `path`."""

    def rel_name(self, name: str) -> str:
        """`name` as the globs see it."""


@dataclass
class _Frame:
    path: str
    rel: str
    key: object
    subdirs: Iterator[str] = field(default_factory=lambda: iter(()))


@dataclass
class _Walker:
    """Depth-first walk over a `_Lister`, one folder listing in memory at a time."""

    uri: str
    top: str
    lister: _Lister
    single_file: bool = False
    top_listing: tuple[list[str], list[str]] | None = None

    def prime(self) -> _Walker:
        """List the top folder now, so that a missing or unreadable source fails at once."""
        if not self.single_file:
            self.top_listing = _wrap_errors(self.uri, self.lister.listdir, self.top)
        return self

    def top_subdirs(self) -> list[str]:
        """The top folder's subfolder names, in walk order (none for a single file)."""
        if self.single_file:
            return []
        if self.top_listing is None:
            self.prime()
        assert self.top_listing is not None
        return list(self.top_listing[1])

    def walk(
        self, matcher: GlobMatcher, on_error: ErrorHandler, *, subdirs: tuple[str, ...] | None = None
    ) -> Iterator[str]:
        """Yield matching file references under `top` in the documented order.

        With `subdirs`, only part of it: () the top folder's own files, else only what lies under those
        of its subfolders (the top's files left out), in the same order.
        """
        lister = self.lister
        if self.single_file:
            if subdirs is None or not subdirs:
                yield lister.ref(self.top)
            return
        stack: list[_Frame] = []
        active: set[object] = set()  # keys of the folders on the stack: a repeat is a loop
        frame: _Frame | None = _Frame(self.top, "", _wrap_errors(self.uri, lister.enter, self.top))
        files, dirs = self.top_listing or _wrap_errors(self.uri, lister.listdir, self.top)
        self.top_listing = None
        if subdirs is not None:
            files, dirs = (files, []) if not subdirs else ([], list(subdirs))
        while frame is not None:
            for name in files:
                if matcher.wants_file(frame.rel + lister.rel_name(name)):
                    yield lister.ref(lister.file_path(frame.path, name))
            frame.subdirs = iter(dirs)
            stack.append(frame)
            active.add(frame.key)
            frame = None
            while stack and frame is None:
                subdir = next(stack[-1].subdirs, None)
                if subdir is None:
                    active.discard(stack.pop().key)
                else:
                    frame, files, dirs = self._open(stack[-1], subdir, matcher, active, on_error)

    def _open(
        self, parent: _Frame, name: str, matcher: GlobMatcher, active: set[object], on_error: ErrorHandler
    ) -> tuple[_Frame | None, list[str], list[str]]:
        lister = self.lister
        path = lister.dir_path(parent.path, name)
        rel = parent.rel + lister.rel_name(name)
        skip: tuple[None, list[str], list[str]] = (None, [], [])
        if matcher.prunes_dir(rel):
            return skip
        try:
            key = lister.enter(path)
            if key is None or key in active:
                return skip
            files, dirs = lister.listdir(path)
        except (FileNotFoundError, NotADirectoryError):
            return skip  # removed while we walked
        except Exception as exc:
            error = _classify(self.uri, exc)
            if isinstance(error, SourceNetworkError):
                raise error from exc  # the listing is incomplete: let the caller retry and resume
            on_error(lister.ref(path), exc)
            return skip
        return _Frame(path, rel + "/", key), files, dirs


def _wrap_errors(uri: str, fn: Callable[..., T], *args: Any) -> T:
    try:
        return fn(*args)
    except SourceError:
        raise
    except Exception as exc:
        raise _classify(uri, exc) from exc


class _LocalLister:
    """Folders on this machine, via os.scandir; symlinked folders must stay inside the roots."""

    def __init__(self, roots: Sequence[str]) -> None:
        self.roots = roots

    def listdir(self, path: str) -> tuple[list[str], list[str]]:
        files: list[str] = []
        dirs: list[str] = []
        with os.scandir(path) as entries:
            for entry in entries:
                if not _encodable(entry.name):
                    _log_error(entry.path, ValueError("file name is not valid UTF-8"))
                    continue
                try:
                    is_dir = entry.is_dir()
                except OSError:
                    is_dir = False  # e.g. a symlink to itself: listed, and the worker reports it
                (dirs if is_dir else files).append(entry.name)
        files.sort()
        dirs.sort()
        return files, dirs

    def enter(self, path: str) -> object | None:
        if os.path.islink(path):
            confine(path, self.roots)
        st = os.stat(path)
        return (st.st_dev, st.st_ino)

    def file_path(self, path: str, name: str) -> str:
        return os.path.join(path, name)

    dir_path = file_path

    def ref(self, path: str) -> str:
        return path

    def rel_name(self, name: str) -> str:
        return name


def _encodable(name: str) -> bool:
    # Undecodable bytes arrive as lone surrogates, which no JSON message or record can carry.
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class _FsspecLister:
    """Folders of a remote fsspec filesystem (s3); one uncached `ls` per folder."""

    def __init__(self, fs: AbstractFileSystem) -> None:
        self.fs = fs

    def listdir(self, path: str) -> tuple[list[str], list[str]]:
        prefix = path.rstrip("/") + "/"
        files: list[str] = []
        dirs: list[str] = []
        for entry in self.fs.ls(path, detail=True):
            name = entry["name"]
            if not name.startswith(prefix):
                continue  # the folder itself, or a link to elsewhere
            rest = name[len(prefix) :].rstrip("/")
            # Only direct children: with HTTP pages this is what keeps the walk finite.
            if rest and "/" not in rest and rest not in (".", "..") and self._keep(rest):
                (dirs if entry.get("type") == "directory" else files).append(rest)
        files.sort()
        dirs.sort()
        return files, dirs

    def _keep(self, name: str) -> bool:
        return True

    def enter(self, path: str) -> object | None:
        return path

    def file_path(self, path: str, name: str) -> str:
        return path.rstrip("/") + "/" + name

    dir_path = file_path

    def ref(self, path: str) -> str:
        return cast(str, self.fs.unstrip_protocol(path))

    def rel_name(self, name: str) -> str:
        return name


class _HttpLister(_FsspecLister):
    """HTTP 'folders' are pages of links: folder URLs end with '/', names are %-escaped."""

    def _keep(self, name: str) -> bool:
        return "?" not in name and "#" not in name  # sort-order and anchor links of index pages

    def dir_path(self, path: str, name: str) -> str:
        return path.rstrip("/") + "/" + name + "/"

    def ref(self, path: str) -> str:
        return path

    def rel_name(self, name: str) -> str:
        return unquote(name)


def _walker_for(uri: str, roots: Sequence[str], storage_options: dict[str, Any]) -> _Walker:
    scheme = urlsplit(uri).scheme.lower()
    if is_local(uri):
        return _local_walker(uri, roots)
    if scheme in schemes.S3:
        return _remote_walker(uri, "s3", storage_options)
    if scheme in schemes.HTTP:
        return _http_walker(uri, storage_options)
    if scheme in schemes.extra():
        return _remote_walker(uri, scheme, storage_options)
    raise SourceSpecError(uri, f"unsupported scheme {scheme!r} ({schemes.HINT})")


def _local_walker(uri: str, roots: Sequence[str]) -> _Walker:
    top = os.path.normpath(os.path.abspath(local_path(uri)))
    try:
        confine(top, roots)
    except OutsideRootsError:
        raise SourceOutsideRootsError(
            uri, f"outside_roots: {top!r} is not under any allowed source root {list(roots)!r}"
        ) from None
    if not os.path.exists(top):
        raise SourceNotFoundError(uri, "no such file or folder")
    if not os.path.isdir(top):
        return _Walker(uri, top, _LocalLister(roots), single_file=True)
    return _Walker(uri, top, _LocalLister(roots))


def _filesystem(uri: str, protocol: str, storage_options: dict[str, Any]) -> AbstractFileSystem:
    import fsspec

    try:
        cls = fsspec.get_filesystem_class(protocol)
    except ImportError as exc:
        extra = "s3" if protocol == "s3" else "http"
        raise SourceSpecError(uri, f"needs the {extra!r} extra: pip install 'phash-fleet[{extra}]' ({exc})") from exc
    # A listings cache would keep every folder ever listed: the whole source, in memory. The
    # instance itself (and its client) is reused by fsspec across listings with the same options.
    options = {"use_listings_cache": False, **storage_options}
    return cls(**options)


def _remote_walker(uri: str, protocol: str, storage_options: dict[str, Any]) -> _Walker:
    fs = _filesystem(uri, protocol, storage_options)
    path = fs._strip_protocol(uri).rstrip("/")
    info = _wrap_errors(uri, fs.info, path)
    return _Walker(uri, path, _FsspecLister(fs), single_file=info.get("type") != "directory")


def _http_walker(uri: str, storage_options: dict[str, Any]) -> _Walker:
    fs = _filesystem(uri, "http", storage_options)
    lister = _HttpLister(fs)
    if not uri.endswith("/"):
        info = _wrap_errors(uri, fs.info, uri)
        final = info.get("url", uri)
        if info.get("mimetype") != "text/html" and not final.endswith("/"):
            return _Walker(uri, uri, lister, single_file=True)
        uri = final if final.endswith("/") else final + "/"
    return _Walker(uri, uri, lister)


def _classify(uri: str, exc: BaseException) -> SourceError:
    """Map a filesystem/client exception to the SourceError subclass that names its cause."""
    detail = f"{type(exc).__name__}: {exc}"
    status = getattr(exc, "status", None)
    if isinstance(exc, SourceError):
        return exc
    if isinstance(exc, OutsideRootsError):
        return SourceOutsideRootsError(uri, str(exc))
    if isinstance(exc, (FileNotFoundError, NotADirectoryError)) or status == 404:
        return SourceNotFoundError(uri, detail)
    if isinstance(exc, PermissionError) or status in (401, 403) or type(exc).__name__ in _CREDENTIAL_ERRORS:
        return SourcePermissionError(uri, detail)
    if is_network_error(exc):
        return SourceNetworkError(uri, detail)
    return SourceError(uri, detail)


#: botocore's names for missing or unusable credentials: a permission problem, not a network one.
_CREDENTIAL_ERRORS = ("NoCredentialsError", "PartialCredentialsError", "CredentialRetrievalError")


def is_network_error(exc: BaseException) -> bool:
    """True for an error that says the server could not be reached, or dropped the connection."""
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    module = type(exc).__module__ or ""
    # aiohttp client errors and botocore's endpoint/connection errors, without importing either.
    return module.startswith(("aiohttp", "botocore", "aiobotocore", "urllib3")) and not isinstance(
        exc, (ValueError, TypeError)
    )


__all__ = [
    "DEFAULT_INCLUDE",
    "GlobMatcher",
    "SourceError",
    "SourceNetworkError",
    "SourceNotFoundError",
    "SourceOutsideRootsError",
    "SourcePermissionError",
    "SourceSpecError",
    "SourceSplit",
    "iter_shard",
    "iter_source",
    "split_source",
]
