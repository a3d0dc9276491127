"""The fast path: decode at reduced size (JPEG DCT scaling, else a box reduce), then apply the
reference resize's own LANCZOS weights to the reduced image.

imagehash converts to grey and resizes the full image to a few dozen pixels with LANCZOS; each of
those pixels is a weighted sum over a window of hundreds of source pixels. A JPEG decoded at 1/8
scale gives each 8x8 block's mean for little more than the cost of reading the file, and the
reference weights summed per block, applied to those means, give the same small image up to the
detail inside each block. Rounded to 8 bits as Pillow rounds, that gives imagehash's phash for
92-95% of 12 MP photos, the rest 2 bits off: photos whose two middle DCT coefficients nearly tie,
which the estimate itself can tell (``_close_call``). Those are decoded again at 1/4 scale, which
settles them. Measured (bench/hash_speed.py, 40 photos): imagehash's hash for every one, 5.4x
imagehash's speed; without the second look (RECHECK off) 6.2x and 95% identical. What bounds the
speed is libjpeg-turbo reading the Huffman-coded file, which alone takes 1/7 of imagehash's time.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache

import imagehash
import numpy as np
from PIL import Image

from phashfleet.hashing import weights
from phashfleet.hashing.algorithms import exact_hash, resize_target
from phashfleet.hashing.decode import load, normalize

#: A reduced pixel (box) spans at most 1/MIN_SPAN of the input pixels behind one output pixel.
#: Below a span of 2 * MIN_SPAN nothing is shrunk: Pillow's own two-pass rounding then differs
#: from any estimate about as often as the estimate's error does.
MIN_SPAN = 11
_FACTORS = (8, 4, 2)
#: A grey hash decodes the JPEG's luma plane only (no chroma, no colour conversion): as close to
#: imagehash's RGB-then-grey as decoding RGB at reduced size, and 10% faster.
GREY_DRAFT_MODE = "L"
#: A phash estimate is "close" when noise of this many grey levels (before Pillow's rounding) can
#: flip one of its bits; a close one is decoded again at twice the size (or, if the full image is
#: in memory anyway, finished exactly). On 12 MP photos at 1/8 scale this flags the 5-8% whose two
#: middle DCT coefficients nearly tie, which are the ones whose bits the estimate gets wrong.
CLOSE_NOISE = 0.05
_CLOSE_SAMPLES = 12
#: Whether close phash calls are decoded again (off only to measure what the check buys).
RECHECK = True


def reduction(width: int, height: int, algorithm: str, hash_size: int) -> int:
    """How much to shrink the decode (1, 2, 4 or 8) for this image size and hash."""
    if algorithm == "colorhash":
        # Fractions of pixels per colour bin shift when pixels are averaged: stay at 1/2.
        return 2 if min(width, height) >= 1024 else 1
    if algorithm == "whash":
        out_w = out_h = hash_size
    else:
        out_w, out_h = resize_target(algorithm, hash_size)
    span = min(width / out_w, height / out_h)
    return next((f for f in _FACTORS if f * MIN_SPAN <= span), 1)


def decode_reduced(image: Image.Image, factor: int, mode: str | None = None) -> tuple[Image.Image, int]:
    """Decode ``image`` shrunk by ``factor`` (box means); returns the image and the factor used."""
    if factor > 1 and image.format in ("JPEG", "MPO"):
        width, height = image.size
        image.draft(mode, (max(1, width // factor), max(1, height // factor)))
    done = image.decoderconfig[0] if getattr(image, "decoderconfig", None) else 1
    image = normalize(load(image))
    return image, done


def fast_hash(image: Image.Image, algorithm: str, hash_size: int,
              reopen: Callable[[], Image.Image] | None = None) -> imagehash.ImageHash:
    """Hash an opened (not yet loaded) image by the fast path.

    ``reopen`` gives the same image opened afresh; with it, a phash whose estimate is close to
    flipping a bit is decoded once more at twice the size.
    """
    width, height = image.size
    factor = reduction(width, height, algorithm, hash_size)
    reduced, done = decode_reduced(image, factor, None if algorithm == "colorhash" else GREY_DRAFT_MODE)
    if factor == 1 or algorithm == "colorhash":
        return exact_hash(reduced, algorithm, hash_size)
    pixels, factor = _grey_boxes(reduced, done, factor)
    if algorithm == "whash":
        scale = max(2 ** int(math.log2(min(width, height))), hash_size)
        sums = weights.grouped(pixels, (width, height), factor, scale, hash_size)
        return imagehash.ImageHash(sums > np.median(sums))
    target = resize_target(algorithm, hash_size)
    values = weights.resample(pixels, (width, height), factor, target)
    if algorithm == "phash" and RECHECK and _close_call(values, hash_size):
        if done == 1:  # the full image is in memory already (no reduced decode for this format)
            return exact_hash(reduced, algorithm, hash_size)
        if reopen is not None:
            factor //= 2
            if factor == 1:
                return exact_hash(normalize(load(reopen())), algorithm, hash_size)
            reduced, done = decode_reduced(reopen(), factor, GREY_DRAFT_MODE)
            pixels, factor = _grey_boxes(reduced, done, factor)
            values = weights.resample(pixels, (width, height), factor, target)
    small = weights.round_like_pillow(values)
    # Already the size imagehash resizes to: its resize is then a plain copy, the rest is its own.
    return exact_hash(Image.fromarray(small, "L"), algorithm, hash_size)


def _grey_boxes(reduced: Image.Image, done: int, factor: int) -> tuple[np.ndarray, int]:
    """The grey box means as an array, reduced the rest of the way if the decoder did less."""
    grey = reduced if reduced.mode == "L" else reduced.convert("L")
    if done < factor:
        grey = grey.reduce(factor // done)
    return np.asarray(grey), max(factor, done)


def _close_call(values: np.ndarray, hash_size: int) -> bool:
    """True if noise of CLOSE_NOISE grey levels before rounding can change a phash bit."""
    dct, noise = _close_call_tables(values.shape[0], values.shape[1], hash_size)
    trials = np.concatenate([values[None], values[None] + noise])
    pixels = np.clip(np.floor(trials + 0.5), 0, 255)
    coefs = (dct @ pixels @ dct.T).reshape(len(trials), -1)
    ordered = np.sort(coefs, axis=1)  # np.median per row, without its overhead (a third of this check)
    half = coefs.shape[1] // 2
    medians = (ordered[:, half - 1:half] + ordered[:, half:half + 1]) / 2 if coefs.shape[1] % 2 == 0 \
        else ordered[:, half:half + 1]
    bits = coefs > medians
    return bool((bits[1:] != bits[0]).any())


@lru_cache(maxsize=16)
def _close_call_tables(rows: int, cols: int, hash_size: int) -> tuple[np.ndarray, np.ndarray]:
    """scipy's DCT-II rows and the noise draws for `_close_call` (the same draws for every file)."""
    n = np.arange(rows)
    dct = 2 * np.cos(np.pi * np.outer(np.arange(hash_size), 2 * n + 1) / (2 * rows))
    noise = np.random.default_rng(0).normal(0.0, CLOSE_NOISE, (_CLOSE_SAMPLES, rows, cols))
    for table in (dct, noise):
        table.setflags(write=False)
    return dct, noise
