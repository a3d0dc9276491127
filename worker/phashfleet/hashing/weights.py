"""Pillow's LANCZOS resampling as weight matrices, so a reduced image can stand in for the full one.

Pillow resizes in two passes (rows, then columns) with coefficients it computes per output pixel
and rounds to 22-bit fixed point. Here those same coefficients are built with numpy; summed over
groups of ``factor`` input pixels, they apply to an image that was box-reduced by ``factor``
(a JPEG decoded at 1/2, 1/4 or 1/8 scale, or ``Image.reduce``) and give the full-size result up
to the detail inside each box.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from threadpoolctl import ThreadpoolController

#: Pillow's fixed-point precision for 8-bit resampling coefficients (32 - 8 - 2).
PRECISION_BITS = 22
_SUPPORT = 3.0  # LANCZOS (a = 3)
# These products are small: a multi-threaded BLAS spends 20x longer handing them out to threads
# (and contends with the other hashing processes) than it takes to compute them on one.
_BLAS = ThreadpoolController()


def _lanczos(x: np.ndarray) -> np.ndarray:
    """The Lanczos-3 kernel, zero outside [-3, 3)."""
    safe = np.where(x == 0.0, 1.0, x)
    sinc_product = np.sin(np.pi * safe) * np.sin(np.pi * safe / 3.0) / (np.pi * np.pi * safe * safe / 3.0)
    value = np.where(x == 0.0, 1.0, sinc_product)
    return np.where((x >= -_SUPPORT) & (x < _SUPPORT), value, 0.0)


@lru_cache(maxsize=256)
def lanczos_taps(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Return (first input index, integer coefficients) per output pixel, exactly as Pillow has them.

    The coefficients are Pillow's 22-bit fixed-point integers (as float64), one row per output
    pixel, padded with zeros to a common width.
    """
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = _SUPPORT * filterscale
    ksize = int(np.ceil(support)) * 2 + 1
    centers = (np.arange(out_size) + 0.5) * scale
    xmin = np.maximum((centers - support + 0.5).astype(np.int64), 0)
    xmax = np.minimum((centers + support + 0.5).astype(np.int64), in_size)
    xs = xmin[:, None] + np.arange(ksize)[None, :]
    valid = xs < xmax[:, None]
    k = np.where(valid, _lanczos((xs - centers[:, None] + 0.5) / filterscale), 0.0)
    total = k.sum(axis=1, keepdims=True)
    k = np.divide(k, total, out=k, where=total != 0.0)
    fixed = np.trunc(k * (1 << PRECISION_BITS) + np.where(k < 0, -0.5, 0.5))
    return xmin, np.where(valid, fixed, 0.0)


@lru_cache(maxsize=256)
def box_weights(in_size: int, out_size: int, factor: int, groups: int = 0) -> np.ndarray:
    """Weights (out_size x ceil(in_size / factor)) applying Pillow's resize to a box-reduced axis.

    With ``groups`` > 0 the output rows are summed in ``groups`` equal runs first (whash needs
    block sums of a large resize, not the resize itself). Weights are divided back to unit gain.
    """
    xmin, fixed = lanczos_taps(in_size, out_size)
    n_boxes = -(-in_size // factor)
    rows = np.repeat(np.arange(out_size), fixed.shape[1])
    if groups:
        rows = rows // (out_size // groups)
    cols = (xmin[:, None] + np.arange(fixed.shape[1])[None, :]).ravel()
    keep = cols < in_size
    weights = np.zeros((groups or out_size, n_boxes))
    np.add.at(weights, (rows[keep], cols[keep] // factor), fixed.ravel()[keep])
    weights /= 1 << PRECISION_BITS
    weights.setflags(write=False)
    return weights


@lru_cache(maxsize=256)
def _bands(in_size: int, out_size: int, factor: int, groups: int = 0) -> tuple[tuple[int, int, np.ndarray], ...]:
    """Per output row: the first and last box it reads and its weights there (float32)."""
    weights = box_weights(in_size, out_size, factor, groups)
    bands = []
    for row in weights:
        nonzero = np.flatnonzero(row)
        lo, hi = (int(nonzero[0]), int(nonzero[-1]) + 1) if nonzero.size else (0, 0)
        bands.append((lo, hi, row[lo:hi].astype(np.float32)))
    return tuple(bands)


def _apply(reduced: np.ndarray, rows: tuple[tuple[int, int, np.ndarray], ...], cols: np.ndarray) -> np.ndarray:
    """rows @ reduced @ cols.T, reading only the rows each output row needs."""
    with _BLAS.limit(limits=1, user_api="blas"):
        data = reduced.astype(np.float32)
        partial = np.empty((len(rows), reduced.shape[1]), np.float32)
        for i, (lo, hi, w) in enumerate(rows):
            partial[i] = w @ data[lo:hi]
        out: np.ndarray = partial.astype(np.float64) @ cols.T
        return out


def resample(reduced: np.ndarray, full_size: tuple[int, int], factor: int, out_size: tuple[int, int]) -> np.ndarray:
    """Estimate Pillow's LANCZOS resize of the full-size image from its ``factor``-reduced version.

    ``reduced`` is a 2-D array (rows x columns) of box means; ``full_size`` and ``out_size`` are
    (width, height) as PIL has them. Returns float values before Pillow's final rounding.
    Pillow resizes rows first and clips that pass to 0..255 (LANCZOS overshoots at strong edges:
    up to 18 grey levels on a real photo if the clip is left out), so the estimate does too.
    """
    width, height = full_size
    with _BLAS.limit(limits=1, user_api="blas"):
        across = reduced.astype(np.float32) @ _box_weights_t32(width, out_size[0], factor)
        np.clip(across, 0.0, 255.0, out=across)
        out: np.ndarray = box_weights(height, out_size[1], factor) @ across.astype(np.float64)
        return out


@lru_cache(maxsize=256)
def _box_weights_t32(in_size: int, out_size: int, factor: int) -> np.ndarray:
    """box_weights transposed, in float32 (the wide product; float32 halves its time)."""
    weights = np.ascontiguousarray(box_weights(in_size, out_size, factor).T, dtype=np.float32)
    weights.setflags(write=False)
    return weights


def grouped(reduced: np.ndarray, full_size: tuple[int, int], factor: int, scale: int, groups: int) -> np.ndarray:
    """Block sums (groups x groups) of a ``scale`` x ``scale`` LANCZOS resize, from a reduced image."""
    width, height = full_size
    return _apply(reduced, _bands(height, scale, factor, groups), box_weights(width, scale, factor, groups))


def round_like_pillow(values: np.ndarray) -> np.ndarray:
    """Round to 8 bits the way Pillow's resampler does (half up, clipped to 0..255)."""
    return np.clip(np.floor(values + 0.5), 0, 255).astype(np.uint8)
