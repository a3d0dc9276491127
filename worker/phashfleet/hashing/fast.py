"""The fast path: decode at reduced size (JPEG DCT scaling, else a box reduce), estimate the small
image imagehash would hash from it, and hash that, unless the estimate may be wrong.

imagehash converts to grey and resizes the full image to a few dozen pixels with LANCZOS; each of
those pixels is a weighted sum over a window of hundreds of source pixels. A JPEG decoded at 1/8
scale gives each 8x8 block's mean (less libjpeg's rounding bias, see ``dc_rounding_bias``) for
little more than the cost of reading the file; Pillow's own LANCZOS weights summed per block,
applied rows first with Pillow's clip between the passes, give nearly the same small image (the
error spread per decode scale is SIGMA below). certainty.py then works out how many bits that
error could flip: none, and the hash is imagehash's; otherwise the estimate stands only when at
most ACCEPT_RISK_BITS are in doubt (phash and whash, a JPEG), or else the image is decoded whole
and hashed exactly. What is left of the speed is bounded by libjpeg-turbo reading the
Huffman-coded file. This module quotes no speed: the measured figures, with their commands and
dates, are in the README's Performance section, printed by bench/hash_speed.py.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import imagehash
import numpy as np
from PIL import Image, JpegImagePlugin

from phashfleet.hashing import certainty, weights
from phashfleet.hashing.algorithms import exact_hash, resize_target
from phashfleet.hashing.decode import load, normalize

#: A reduced pixel (box) spans at most 1/MIN_SPAN of the input pixels behind one output pixel.
#: Below a span of 2 * MIN_SPAN nothing is shrunk: Pillow's own two-pass rounding then differs
#: from any estimate about as often as the estimate's error does.
MIN_SPAN = 11
_FACTORS = (8, 4, 2)
#: A grey hash decodes the JPEG's luma plane only (no chroma, no colour conversion): as close to
#: imagehash's RGB-then-grey as decoding RGB at reduced size, and faster.
GREY_DRAFT_MODE = "L"
#: The spread (standard deviation, grey levels) of the estimate's error per pixel of the small
#: image, by the scale it was decoded at; whash's is per block mean. Measured against Pillow's own
#: two-pass resize on the real-photo corpus (tests/harness/photos.py): RMS 0.03-0.08 at 1/8 and
#: 0.03-0.06 at 1/4 and 1/2, most of it Pillow's rounding of its first pass, which no estimate can
#: know. certainty.py decides from these how many bits of a hash are in doubt.
SIGMA = {8: 0.05, 4: 0.04, 2: 0.04}
WHASH_SIGMA = {8: 0.05, 4: 0.04, 2: 0.04}
#: How many bits of a JPEG's estimate may be in doubt for it to stand instead of a full exact
#: decode. Doubt comes in pairs of bits for phash and whash (a near-tie across the median), and a
#: second look at 1/4 scale settles almost none of them: the tie is in the photo, at the level of
#: Pillow's own rounding. dhash and ahash compare single pixels: any doubt means an exact hash.
ACCEPT_RISK_BITS = {"phash": 2, "whash": 2, "dhash": 0, "ahash": 0}


def reduction(width: int, height: int, algorithm: str, hash_size: int) -> int:
    """How much to shrink the decode (1, 2, 4 or 8) for this image size and hash."""
    if algorithm == "colorhash":
        # Fractions of pixels per colour bin shift when pixels are averaged: stay at 1/2.
        return 2 if min(width, height) >= 1024 else 1
    if algorithm == "whash":
        out_w = out_h = hash_size
    else:
        out_w, out_h = _resize_target(algorithm, hash_size)
    span = min(width / out_w, height / out_h)
    return next((f for f in _FACTORS if f * MIN_SPAN <= span), 1)


def decode_reduced(image: Image.Image, factor: int, mode: str | None = None) -> tuple[Image.Image, int]:
    """Decode ``image`` shrunk by ``factor`` (box means); returns the image and the factor used."""
    if factor > 1 and image.format in ("JPEG", "MPO"):
        width, height = image.size
        image.draft(mode, (max(1, width // factor), max(1, height // factor)))
    config = getattr(image, "decoderconfig", None)  # set by draft() on a JPEG
    done = int(config[0]) if config else 1
    image = normalize(load(image))
    return image, done


def fast_hash(
    image: Image.Image, algorithm: str, hash_size: int, reopen: Callable[[], Image.Image] | None = None
) -> imagehash.ImageHash:
    """Hash an opened (not yet loaded) image by the fast path.

    An estimate with bits in doubt (certainty.py) stands for a JPEG when at most ACCEPT_RISK_BITS
    are; otherwise the image is decoded whole (``reopen`` gives it opened afresh) and hashed
    exactly. An image whose full decode is in memory anyway (no reduced decode for its format) is
    hashed exactly whenever its estimate has a bit in doubt.
    """
    width, height = image.size
    factor = reduction(width, height, algorithm, hash_size)
    if image.format in ("JPEG", "MPO") and image.mode not in ("L", "RGB"):
        factor = 1  # CMYK: libjpeg gives no grey plane, and grey of mean CMYK is not mean grey
    if algorithm == "colorhash":
        return exact_hash(decode_reduced(image, factor)[0], algorithm, hash_size)
    reduced, done = decode_reduced(image, factor, GREY_DRAFT_MODE)
    if factor > 1:
        pixels, factor = _grey_boxes(reduced, done, factor)
        found, risk = _estimate(pixels, (width, height), factor, algorithm, hash_size)
        if risk == 0 or (done > 1 and (risk <= ACCEPT_RISK_BITS[algorithm] or reopen is None)):
            return found
        if done > 1 and reopen is not None:  # a reduced JPEG decode: the exact hash needs the whole image
            reduced = normalize(load(reopen()))
    return exact_hash(reduced, algorithm, hash_size)


def _estimate(
    pixels: np.ndarray, full_size: tuple[int, int], factor: int, algorithm: str, hash_size: int
) -> tuple[imagehash.ImageHash, int]:
    """The hash from box means at ``factor``, and how many of its bits may be wrong."""
    width, height = full_size
    if algorithm == "whash":
        scale = max(2 ** int(math.log2(min(width, height))), hash_size)
        sums = weights.grouped(pixels, full_size, factor, scale, hash_size)
        means = sums / (scale // hash_size) ** 2
        return imagehash.ImageHash(sums > np.median(sums)), certainty.whash_risk(means, WHASH_SIGMA[factor])
    target = _resize_target(algorithm, hash_size)
    values = weights.resample(pixels, full_size, factor, target)
    sigma = SIGMA[factor]
    risk = {
        "phash": lambda: certainty.phash_risk(values, hash_size, sigma),
        "dhash": lambda: certainty.dhash_risk(values, sigma),
        "ahash": lambda: certainty.ahash_risk(values, sigma),
    }[algorithm]()
    small = weights.round_like_pillow(values)
    # Already the size imagehash resizes to: its resize is then a plain copy, the rest is its own.
    return exact_hash(Image.fromarray(small, "L"), algorithm, hash_size), risk


def _resize_target(algorithm: str, hash_size: int) -> tuple[int, int]:
    """The size imagehash resizes to for phash, dhash and ahash (the others do not resize)."""
    target = resize_target(algorithm, hash_size)
    if target is None:
        raise ValueError(f"{algorithm} does not resize to a fixed size")
    return target


def _grey_boxes(reduced: Image.Image, done: int, factor: int) -> tuple[np.ndarray, int]:
    """The grey box means as an array, reduced the rest of the way if the decoder did less."""
    grey = reduced if reduced.mode == "L" else reduced.convert("L")
    if done < factor:
        grey = grey.reduce(factor // done)
    pixels = np.asarray(grey, dtype=np.float64)
    if done == 8:
        pixels -= dc_rounding_bias(reduced)
    return pixels, max(factor, done)


def dc_rounding_bias(image: Image.Image) -> float:
    """How much libjpeg's 1/8-scale decode overstates block means on average, from the DC quantiser.

    At 1/8 a block is its DC coefficient times the quantiser step Q, over 8, rounded half up:
    with Q's part in common with 8 being g < 8 the fractions are multiples of g/8, and rounding
    them half up adds g/16 on average (1/8 grey level at quality 95, where Q is 2).
    """
    if not isinstance(image, JpegImagePlugin.JpegImageFile):
        return 0.0
    try:
        step = int(image.quantization[image.layer[0][3]][0])
    except (AttributeError, IndexError, KeyError, TypeError, ValueError):
        return 0.0
    common = math.gcd(step, 8)
    return 0.0 if common == 8 else common / 16
