"""Hashing core (interim entry points written by the lead so the fleet runs end to end; the hashing
work of issue 4 replaces the body while keeping `Settings` and `hash_many`)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import imagehash
from PIL import Image

from phashfleet.access import OutsideRootsError, confine, is_local
from phashfleet.records import make_record

IMAGE_HASHES = {"phash": imagehash.phash, "dhash": imagehash.dhash, "ahash": imagehash.average_hash,
                "whash": imagehash.whash}


@dataclass(frozen=True)
class Settings:
    """How to hash: algorithm, size, exact or fast, per-file timeout and the allowed local roots."""

    algorithm: str = "phash"
    hash_size: int = 8
    exact: bool = False
    timeout_seconds: float = 60.0
    allowed_roots: tuple[str, ...] = ()


def _hash(img: Image.Image, settings: Settings) -> str:
    if settings.algorithm == "colorhash":
        return str(imagehash.colorhash(img, binbits=settings.hash_size))
    return str(IMAGE_HASHES[settings.algorithm](img, hash_size=settings.hash_size))


def hash_ref(ref: str, settings: Settings) -> dict:
    """Hash one file into a record; bad input becomes a failed/skipped record, never an exception."""
    base = {"algorithm": settings.algorithm, "hash_size": settings.hash_size}
    try:
        path = confine(ref, settings.allowed_roots) if is_local(ref) else ref
        mode = os.stat(path).st_mode
        if not stat.S_ISREG(mode):
            return make_record(ref, status="failed", reason="not_a_file: not a regular file", **base)
        size = os.path.getsize(path)
        if size == 0:
            return make_record(ref, status="failed", reason="empty: zero bytes", bytes=0, **base)
        with Image.open(path) as img:
            img.load()
            return make_record(ref, status="ok", hash=_hash(img, settings), bytes=size, width=img.width,
                               height=img.height, **base)
    except OutsideRootsError as exc:
        return make_record(ref, status="failed", reason=str(exc), **base)
    except Image.UnidentifiedImageError:
        return make_record(ref, status="skipped", reason="not_an_image: no image format recognised", **base)
    except Exception as exc:  # noqa: BLE001 - every other failure is this file's record
        return make_record(ref, status="failed", reason=f"decode_error: {exc}", **base)


def hash_many(refs: Iterable[str], settings: Settings) -> Iterator[dict]:
    """Hash files one after another, yielding a record for each."""
    for ref in refs:
        yield hash_ref(ref, settings)
