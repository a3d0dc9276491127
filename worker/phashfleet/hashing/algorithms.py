"""The five hashes on a PIL image, computed by imagehash itself (the exact path); phash's DCT as imagehash's
bits by matrix products (phash_matrix)."""

from __future__ import annotations

import imagehash
import numpy as np
from PIL import Image

from phashfleet.hashing import phash_matrix
from phashfleet.job.spec import spec_enum

#: The CRD's spec.algorithm enum; each has its branch below (hashing.warm runs every one).
ALGORITHMS: tuple[str, ...] = spec_enum("algorithm")


def colorhash_binbits(hash_size: int) -> int:
    """colorhash's ``binbits`` for a hash size: 3/8 of it, so the default 8 gives imagehash's own default 3."""
    return hash_size * 3 // 8


def exact_hash(image: Image.Image, algorithm: str, hash_size: int) -> imagehash.ImageHash:
    """Hash ``image`` as imagehash's own function does (colorhash with ``colorhash_binbits(hash_size)``)."""
    if algorithm == "phash":
        return phash_matrix.phash(image, hash_size)
    if algorithm == "dhash":
        return imagehash.dhash(image, hash_size)
    if algorithm == "ahash":
        return imagehash.average_hash(image, hash_size)
    if algorithm == "whash":
        return imagehash.whash(image, hash_size)
    if algorithm == "colorhash":
        return imagehash.colorhash(image, binbits=colorhash_binbits(hash_size))
    raise ValueError(f"unknown algorithm {algorithm!r}")


def resize_target(algorithm: str, hash_size: int) -> tuple[int, int] | None:
    """The (width, height) imagehash resizes to before hashing, or None if it does not resize."""
    if algorithm == "phash":
        return (hash_size * 4, hash_size * 4)
    if algorithm == "dhash":
        return (hash_size + 1, hash_size)
    if algorithm == "ahash":
        return (hash_size, hash_size)
    return None


def to_hex(value: imagehash.ImageHash) -> str:
    """The hash as imagehash prints it (row-major bits, zero-padded hex), from the packed bits.

    imagehash joins one character per bit and parses that: a tenth of a tiny image's whole hashing.
    """
    bits = np.asarray(value.hash)
    if bits.dtype != np.bool_ or not bits.size:
        return str(value)
    packed = np.packbits(bits.ravel())
    number = int.from_bytes(packed.tobytes(), "big") >> (packed.size * 8 - bits.size)
    return f"{number:0{(bits.size + 3) // 4}x}"
