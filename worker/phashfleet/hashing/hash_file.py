"""hash_ref: one file reference in, one result record out; bad input never raises."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from PIL import Image

# The module, not the name: files/opening imports hashing/errors, which loads this package (and this
# module) while opening is half imported, so `import phashfleet.files.opening` first would fail.
from phashfleet.files import opening
from phashfleet.hashing.algorithms import exact_hash, to_hex
from phashfleet.hashing.decode import load, normalize, open_image
from phashfleet.hashing.errors import FileFailed, FileOutcome, FileSkipped
from phashfleet.hashing.fast import fast_hash
from phashfleet.hashing.filetypes import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, Kind, classify, extension
from phashfleet.hashing.settings import Settings
from phashfleet.hashing.video import hash_video
from phashfleet.results import make_record


def hash_image(image: Image.Image, settings: Settings, reopen: Callable[[], Image.Image] | None = None) -> str:
    """Hash an opened (or decoded) image by the exact or the fast path; returns imagehash's hex."""
    if settings.exact:
        return to_hex(exact_hash(normalize(load(image)), settings.algorithm, settings.hash_size))
    return to_hex(fast_hash(image, settings.algorithm, settings.hash_size, reopen))


def hash_ref(ref: str, settings: Settings) -> dict[str, Any]:
    """Hash one file (path, file:// or fsspec URL) into a record; failures and skips are records too.

    Failure reasons start with a code: outside_roots, not_found, not_a_file, permission_denied,
    empty, read_error, decode_error, decompression_bomb, too_large, error. Skips: not_an_image,
    no_video_support. (timeout and crashed come from the process pool.)
    """
    record = functools.partial(make_record, algorithm=settings.algorithm, hash_size=settings.hash_size)
    size = None
    try:
        # Half the file's time at most goes on re-reads after transient errors; the rest is for hashing.
        with opening.open_source(
            ref, settings.allowed_roots, settings.max_retries, settings.timeout_seconds / 2
        ) as source:
            size = source.size
            kind = _kind(ref, source.head, size)
            if kind is Kind.VIDEO:
                video = hash_video(source.file, lambda frame: hash_image(frame, settings))
                return record(
                    ref,
                    status="ok",
                    hash=video.representative,
                    bytes=size,
                    width=video.width,
                    height=video.height,
                    frames=video.frames,
                )
            image = open_image(source.file)
            width, height = image.size

            def reopen() -> Image.Image:
                source.file.seek(0)
                return open_image(source.file)

            return record(
                ref,
                status="ok",
                hash=hash_image(image, settings, reopen),
                bytes=size,
                width=width,
                height=height,
            )
    except FileOutcome as outcome:
        return record(ref, status=outcome.status, reason=outcome.reason, bytes=size)
    except MemoryError:
        return record(ref, status="failed", reason="too_large: not enough memory", bytes=size)
    except Exception as exc:  # noqa: BLE001 - a library bug on one file must not lose the batch
        return record(ref, status="failed", reason=f"error: {type(exc).__name__}: {exc}", bytes=size)


def _kind(ref: str, head: bytes, size: int) -> Kind:
    """IMAGE or VIDEO to hash; anything else raises its skip (or, for an empty media file, a failure)."""
    ext = extension(ref)
    if size == 0:
        if ext in IMAGE_EXTENSIONS or ext in VIDEO_EXTENSIONS:
            raise FileFailed("empty", "zero-byte file")
        raise FileSkipped("not_an_image", "empty file")
    kind = classify(ref, head)
    if kind in (Kind.IMAGE, Kind.VIDEO) or (kind is Kind.OTHER and _pillow_knows(head)):
        return kind if kind is not Kind.OTHER else Kind.IMAGE
    label = {Kind.AUDIO: "audio", Kind.TEXT: "text"}.get(kind, "unrecognised data")
    raise FileSkipped("not_an_image", f"{label}{f' ({ext})' if ext else ''}")


def _pillow_knows(head: bytes) -> bool:
    """True if one of Pillow's format plugins accepts these first bytes."""
    Image.init()
    for accept in Image.OPEN.values():
        check = accept[1]
        try:
            if check and check(head):
                return True
        except Exception:  # noqa: BLE001 - a plugin's accept() on odd bytes
            continue
    return False
