"""Which files a worker may read: local paths stay inside the allowed source roots."""

from __future__ import annotations

import os
from collections.abc import Sequence
from urllib.parse import unquote, urlsplit

from phashfleet.files import schemes

#: Environment variable with the allowed local roots, separated by os.pathsep (":").
ALLOWED_ROOTS_ENV = "PHASHFLEET_ALLOWED_ROOTS"
#: Environment variable with the local roots a job's output may be written under (os.pathsep-separated).
OUTPUT_ROOTS_ENV = "PHASHFLEET_OUTPUT_ROOTS"
#: Comma-separated URL schemes a worker opens besides schemes.REMOTE, e.g. a test filesystem. Anything
#: else (local://, zip::..., memory://) is refused unopened.
EXTRA_SCHEMES_ENV = "PHASHFLEET_EXTRA_SCHEMES"


def remote_scheme_allowed(ref: str) -> bool:
    """True when `ref` is a URL of a scheme workers may open (never a way around the local roots)."""
    extra = tuple(s.strip() for s in os.environ.get(EXTRA_SCHEMES_ENV, "").split(",") if s.strip())
    return urlsplit(ref).scheme.lower() in schemes.REMOTE + extra


class OutsideRootsError(PermissionError):
    """A path (or the target of a symlink in it) lies outside every allowed source root."""


def allowed_roots_from_env(default: Sequence[str] = ()) -> tuple[str, ...]:
    """Return the allowed roots named by PHASHFLEET_ALLOWED_ROOTS, or `default`."""
    raw = os.environ.get(ALLOWED_ROOTS_ENV, "")
    roots = tuple(r for r in raw.split(os.pathsep) if r)
    return roots or tuple(default)


def output_roots_from_env() -> tuple[str, ...]:
    """Return the output roots named by PHASHFLEET_OUTPUT_ROOTS (empty: no local output is allowed)."""
    return tuple(r for r in os.environ.get(OUTPUT_ROOTS_ENV, "").split(os.pathsep) if r)


def is_local(ref: str) -> bool:
    """True for a plain path or a file:// URL; False for s3://, http(s):// and other schemes."""
    scheme = urlsplit(ref).scheme
    return scheme in schemes.LOCAL or (len(scheme) == 1 and os.name == "nt")


def local_path(ref: str) -> str:
    """Turn a plain path or file:// URL into a plain path (percent-escapes decoded)."""
    if ref.startswith("file://"):
        return unquote(urlsplit(ref).path)
    return ref


def confine(ref: str, allowed_roots: Sequence[str]) -> str:
    """Return the real path of a local `ref` if it lies inside an allowed root, else raise.

    Symlinks and `..` are resolved first, so neither can lead out of a root. With no roots
    configured nothing local is allowed: the secure default.
    """
    real = os.path.realpath(local_path(ref))
    for root in allowed_roots:
        real_root = os.path.realpath(root)
        if real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep):
            return real
    raise OutsideRootsError(f"outside_roots: {local_path(ref)!r} is not under any allowed source root")
