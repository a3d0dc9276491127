"""imagehash's phash bit for bit, with its low-frequency DCT as two small matrix products.

imagehash transforms the whole 32x32 thumbnail with two scipy DCT calls, keeps its 8x8 corner and
compares it with numpy's median: on a thumbnail-sized file that is most of the hashing. The corner
alone is ``C @ P @ C.T``, with ``C`` the first rows of scipy's unnormalised DCT-II matrix. Those
values differ from scipy's in their last bits, so a bit could differ only where another coefficient
is that close to the median: then imagehash's own function decides (flat or symmetric images, whose
coefficients tie exactly).
"""

from __future__ import annotations

from functools import lru_cache

import imagehash
import numpy as np
from PIL import Image

#: imagehash's thumbnail side per hash bit side (its `highfreq_factor`).
HIGHFREQ_FACTOR = 4
#: A coefficient closer to the median than this, relative to the largest coefficient, is a tie to
#: settle with scipy's own values. Both ways of computing are within ~1e-15 of it (32-term sums of
#: doubles twice over); the margin is far wider and still far below any real gap between coefficients.
TIE_MARGIN = 1e-9


@lru_cache(maxsize=8)
def dct_rows(rows: int, size: int) -> np.ndarray:
    """The first `rows` rows of scipy.fftpack's unnormalised DCT-II matrix of order `size`."""
    k = np.arange(rows)[:, None]
    n = np.arange(size)[None, :]
    matrix = 2.0 * np.cos(np.pi * k * (2 * n + 1) / (2 * size))
    matrix.setflags(write=False)
    return matrix


def phash_bits(image: Image.Image, hash_size: int = 8) -> np.ndarray | None:
    """phash's bits (hash_size x hash_size booleans), or None when a coefficient ties with the median."""
    side = hash_size * HIGHFREQ_FACTOR
    thumbnail = image.convert("L").resize((side, side), Image.Resampling.LANCZOS)
    pixels = np.asarray(thumbnail, dtype=np.float64)
    rows = dct_rows(hash_size, side)
    low = rows @ pixels @ rows.T
    flat = np.sort(low, axis=None)
    middle = flat.size // 2
    margin = TIE_MARGIN * (1.0 + abs(flat[0]) + abs(flat[-1]))
    if flat.size % 2:  # the median is the middle coefficient itself: its neighbours must be clear of it
        median = flat[middle]
        if min(median - flat[middle - 1], flat[middle + 1] - median) <= margin:
            return None
    else:  # the mean of the middle two, which must be clear of each other
        median = (flat[middle - 1] + flat[middle]) / 2.0
        if flat[middle] - flat[middle - 1] <= 2 * margin:
            return None
    bits: np.ndarray = low > median
    return bits


def phash(image: Image.Image, hash_size: int = 8) -> imagehash.ImageHash:
    """imagehash.phash(image, hash_size), computed by `phash_bits` unless a coefficient ties."""
    if hash_size < 2:
        return imagehash.phash(image, hash_size)  # raises imagehash's own error
    bits = phash_bits(image, hash_size)
    return imagehash.ImageHash(bits) if bits is not None else imagehash.phash(image, hash_size)
