"""How many bits of a fast estimate's hash its error could flip.

The fast path estimates the small image imagehash would hash (before Pillow rounds it) with an
error whose spread per pixel is ``sigma`` grey levels (measured on real photos per decode scale,
see fast.py). Each check here models that error as independent Gaussian noise per pixel and
counts the bits it could plausibly change: for phash and whash the values whose order across the
median is closer than MIN_Z standard deviations (they change bits in pairs), for dhash and ahash
the pixels whose comparison may flip. 0 means the hash is imagehash's; fast.py decides what to do
with more.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import numpy as np
from scipy.special import factorial, ndtr

#: A pair of coefficients whose order decides bits must be this many standard deviations apart.
MIN_Z = 3.0
#: Largest summed chance of a flipped bit that still counts as sure (dhash, ahash).
MAX_FLIP_CHANCE = 0.01
_PAIRS = 4  # coefficients on each side of the median whose order is checked


def _rounding_moves(values: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pillow's rounding of the estimate, and the chances the true value rounds one up or one down."""
    rounded = np.floor(values + 0.5)
    up = ndtr((values - (rounded + 0.5)) / sigma)
    down = ndtr(((rounded - 0.5) - values) / sigma)
    return rounded, up, down


def _pairs_at_risk(coefs: np.ndarray, spread: Callable[[list[int], list[int]], np.ndarray]) -> int:
    """How many bits a swap across the median could change: 2 per pair closer than MIN_Z deviations.

    ``spread(above, below)`` gives the standard deviation of each difference. Values come in and
    out of the upper half in pairs, so the count is twice the smaller number of distinct values on
    either side that take part in a close pair.
    """
    order = np.argsort(coefs, kind="stable")
    median = np.median(coefs)
    above = [int(i) for i in order if coefs[i] > median][:_PAIRS]
    below = [int(i) for i in order[::-1] if coefs[i] <= median][:_PAIRS]
    if not above or not below:
        return coefs.size
    gaps = np.array([[coefs[a] - coefs[b] for b in below] for a in above])
    sd = spread(above, below)
    # Where no pixel can plausibly move (sd ~ 0), a gap of float noise is a tie that stays a tie.
    close = (gaps < MIN_Z * sd) & (sd > 1e-6)
    return 2 * int(min(close.any(axis=1).sum(), close.any(axis=0).sum()))


@lru_cache(maxsize=16)
def _dct_rows(size: int, hash_size: int) -> np.ndarray:
    """scipy.fftpack's unnormalised DCT-II rows (hash_size x size), the ones imagehash's phash keeps."""
    n = np.arange(size)
    rows = 2 * np.cos(np.pi * np.outer(np.arange(hash_size), 2 * n + 1) / (2 * size))
    rows.setflags(write=False)
    return rows


def phash_risk(values: np.ndarray, hash_size: int, sigma: float) -> int:
    """Bits of the phash of round(values) that per-pixel noise of ``sigma`` may change."""
    rounded, up, down = _rounding_moves(values, sigma)
    dct_y = _dct_rows(values.shape[0], hash_size)
    dct_x = _dct_rows(values.shape[1], hash_size)
    coefs = (dct_y @ rounded @ dct_x.T).ravel()
    moves = up + down  # the variance of each pixel's rounding change (it moves by one at most)

    def basis(indices: list[int]) -> np.ndarray:
        """The 2-D DCT basis images of these coefficients (row-major like imagehash's bits)."""
        rows, cols = np.divmod(np.array(indices), hash_size)
        images: np.ndarray = np.einsum("ay,ax->ayx", dct_y[rows], dct_x[cols])
        return images

    def spread(above: list[int], below: list[int]) -> np.ndarray:
        # Var(c_a - c_b) = sum over pixels of (basis_a - basis_b)^2 * moves.
        diff = basis(above)[:, None] - basis(below)[None, :]
        sd: np.ndarray = np.sqrt(np.einsum("abyx,abyx,yx->ab", diff, diff, moves))
        return sd

    return _pairs_at_risk(coefs, spread)


def _bits_at_risk(chance: np.ndarray) -> int:
    """0 if the summed chance of a flipped bit is small enough, else how many bits carry it (at least 1)."""
    if chance.sum() <= MAX_FLIP_CHANCE:
        return 0
    return max(1, int((chance > MAX_FLIP_CHANCE / 4).sum()))


def dhash_risk(values: np.ndarray, sigma: float) -> int:
    """True if the dhash of round(values) (rows x cols+1) is unlikely to change under ``sigma`` noise."""
    rounded, up, down = _rounding_moves(values, sigma)
    left, right = rounded[:, :-1], rounded[:, 1:]
    diff = right - left
    # A bit right > left changes when the right pixel or the left one moves across the other.
    chance = np.where(diff == 1, down[:, 1:] + up[:, :-1], 0.0)
    chance = chance + np.where(diff == 0, up[:, 1:] + down[:, :-1], 0.0)
    chance = chance + np.where(diff == -1, up[:, 1:] * down[:, :-1], 0.0)
    chance = chance + np.where(diff == 2, down[:, 1:] * up[:, :-1], 0.0)
    return _bits_at_risk(chance)


def ahash_risk(values: np.ndarray, sigma: float) -> int:
    """True if the ahash of round(values) is unlikely to change under ``sigma`` noise."""
    rounded, up, down = _rounding_moves(values, sigma)
    total = rounded.sum()
    count = rounded.size
    # bit = pixel > mean, i.e. count * pixel > total: both sides move when a pixel rounds otherwise.
    margin = count * rounded - total  # > 0 for a set bit
    own = np.where(margin > 0, down * (margin <= count - 1), up * (margin + count > 0))
    # The others move the total too: k of them must round the same way to cross a margin of k
    # (a union bound, since only a few pixels at all are near a rounding edge).
    others_up, others_down = float(up.sum()), float(down.sum())
    needed = np.minimum(np.where(margin > 0, margin, 1 - margin), 30)  # past 30 the chance is nil
    pool = np.where(margin > 0, others_up, others_down)
    shifted = np.minimum(pool**needed / factorial(needed), 1.0)
    chance = own + shifted
    return _bits_at_risk(chance)


def whash_risk(means: np.ndarray, sigma: float) -> int:
    """True if whash's bits (block means above their median) stay under ``sigma`` noise per block mean."""
    flat = means.ravel()
    return _pairs_at_risk(flat, lambda above, below: np.full((len(above), len(below)), sigma * np.sqrt(2)))
