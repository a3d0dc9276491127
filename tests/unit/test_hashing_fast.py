"""The fast path on generated photos: imagehash's hash for nearly every one, never more than 2 bits off.

The speed is the benchmark's business (bench/hash_speed.py); here only correctness is asserted,
including that large photos really are decoded at reduced size.
"""

from __future__ import annotations

from pathlib import Path

import imagehash
import numpy as np
import pytest
from PIL import Image

from harness.synthetic import VERSION, photo_like
from phashfleet.hashing import Settings, certainty, fast, hash_ref

CACHE = Path(__file__).resolve().parents[2] / ".cache" / "test-images"
REFERENCE = {
    "phash": imagehash.phash,
    "dhash": imagehash.dhash,
    "ahash": imagehash.average_hash,
    "whash": imagehash.whash,
}


def photo(width: int, height: int, seed: int, quality: int = 90) -> Path:
    """A cached photo-like JPEG (made once, reused by later runs)."""
    path = CACHE / f"photo-v{VERSION}-{width}x{height}-s{seed}-q{quality}.jpg"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        photo_like(width, height, seed).save(tmp, "JPEG", quality=quality)
        tmp.rename(path)
    return path


def bits_apart(a: str, b: str) -> int:
    return bin(int(a, 16) ^ int(b, 16)).count("1")


def distances(paths: list[Path], algorithm: str, size: int) -> list[int]:
    settings = Settings(algorithm=algorithm, hash_size=size, allowed_roots=(str(CACHE),))
    return [
        bits_apart(hash_ref(str(p), settings)["hash"], str(REFERENCE[algorithm](Image.open(p), size))) for p in paths
    ]


@pytest.fixture(scope="module")
def medium() -> list[Path]:
    """32 photos big enough for the fast path to halve them for a 4x4 phash (16x16 resize)."""
    return [photo(856, 642, seed) for seed in range(100, 132)]


@pytest.fixture(scope="module")
def large() -> list[Path]:
    """Two 12 MP photos, the size the fast path is built for."""
    return [photo(4032, 3024, 200, quality=92), photo(3024, 4032, 201, quality=92)]


def test_medium_photos_match_imagehash(medium):
    assert fast.reduction(856, 642, "phash", 4) == 2
    found = distances(medium, "phash", 4)
    assert max(found) <= 2, found
    assert found.count(0) >= 0.95 * len(found), found


def spy_on_scales(monkeypatch) -> list[int]:
    """Record the scale (1/n) of every reduced decode the fast path does."""
    scales = []
    real = fast.decode_reduced

    def spy(image, factor, mode=None):
        result = real(image, factor, mode)
        scales.append(result[1])
        return result

    monkeypatch.setattr(fast, "decode_reduced", spy)
    return scales


def test_12mp_photos_are_decoded_small_and_match(large, monkeypatch):
    assert fast.reduction(4032, 3024, "phash", 8) == 8
    scales = spy_on_scales(monkeypatch)
    found = distances(large, "phash", 8)
    assert scales[0] == 8 and set(scales) <= {8, 4}, "JPEG DCT scaling was not used"
    assert found == [0, 0]


def test_a_near_tie_of_two_bits_stands_without_another_decode(large, monkeypatch):
    """A phash estimate with one near-tie across the median (2 bits in doubt) is kept as it is."""
    scales = spy_on_scales(monkeypatch)
    monkeypatch.setattr(certainty, "phash_risk", lambda values, size, sigma: 2)
    assert distances(large[:1], "phash", 8) == [0]
    assert scales == [8]


def test_an_estimate_with_more_than_two_bits_in_doubt_is_hashed_exactly(large, monkeypatch):
    """4 bits in doubt is too many: the full image is decoded and hashed exactly."""
    scales = spy_on_scales(monkeypatch)
    monkeypatch.setattr(certainty, "phash_risk", lambda values, size, sigma: 4)
    exact_calls = []
    real_exact = fast.exact_hash
    monkeypatch.setattr(
        fast, "exact_hash", lambda image, a, n: exact_calls.append(image.size) or real_exact(image, a, n)
    )
    assert distances(large[:1], "phash", 8) == [0]
    assert scales == [8]
    assert exact_calls[-1] == (4032, 3024)  # after the estimate's own (32 x 32) hash


def grey_from_low_dct(block: np.ndarray) -> np.ndarray:
    """The 32x32 integer grey image whose scipy DCT-II has ``block`` (8x8) as its low part, rounded."""
    n = np.arange(32)
    dct = 2 * np.cos(np.pi * np.outer(n, 2 * n + 1) / 64)
    coefs = np.zeros((32, 32))
    coefs[:8, :8] = block
    inverse = np.linalg.inv(dct)
    return np.round(inverse @ coefs @ inverse.T)


def symmetric_block(diagonal: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """An 8x8 low DCT block with (k, l) == (l, k): 7 diagonal values, 28 pair values, DC = grey 128."""
    block = np.zeros((8, 8))
    block[0, 0] = 4 * 1024 * 128.0  # the largest coefficient, so never near the median
    for d, value in zip(range(1, 8), diagonal, strict=True):
        block[d, d] = value
    spots = [(row, col) for row in range(8) for col in range(row + 1, 8)]
    np.random.default_rng(3).shuffle(spots)
    for (row, col), value in zip(spots, pairs, strict=True):
        block[row, col] = block[col, row] = value
    return block


def test_close_call_check_tells_ties_from_clear_cases():
    """In a symmetric image (k, l) and (l, k) tie exactly; put such a pair across the median or not."""
    # 31 values under a tied pair at 0 and 30 over it (plus DC): the median splits the pair.
    tie = grey_from_low_dct(
        symmetric_block(
            np.r_[np.linspace(-400, -300, 5), [300, 400]],
            np.r_[[0.0], np.linspace(-290, -20, 13), np.linspace(20, 290, 14)],
        )
    )
    assert np.array_equal(tie, tie.T)
    sigma = fast.SIGMA[8]
    # Just under each rounding edge, the noise moves pixels across it: the tied pair's order flips.
    assert certainty.phash_risk(tie + 0.49, 8, sigma) >= 2
    # Whole grey levels never cross an edge under that noise: nothing can change.
    assert certainty.phash_risk(tie, 8, sigma) == 0
    # 32 values at or under -300, 32 at or over +300: no noise of that size can reach across.
    clear = grey_from_low_dct(
        symmetric_block(
            np.r_[np.linspace(-700, -600, 4), np.linspace(600, 700, 3)],
            np.r_[np.linspace(-590, -300, 14), np.linspace(300, 590, 14)],
        )
    )
    assert certainty.phash_risk(clear + 0.49, 8, sigma) == 0


@pytest.mark.parametrize("algorithm", ["dhash", "ahash", "whash"])
def test_other_grey_hashes_stay_within_two_bits(large, algorithm):
    """dhash and ahash compare single 8-bit pixels, so a rounding step can flip a bit; never more."""
    assert fast.reduction(4032, 3024, algorithm, 8) > 1
    assert max(distances(large, algorithm, 8)) <= 2


def test_colorhash_fast_decodes_at_half_size_and_stays_close(large):
    assert fast.reduction(4032, 3024, "colorhash", 8) == 2
    settings = Settings(algorithm="colorhash", hash_size=8, allowed_roots=(str(CACHE),))
    for path in large:
        got = hash_ref(str(path), settings)["hash"]
        assert bits_apart(got, str(imagehash.colorhash(Image.open(path)))) <= 4


def test_png_fast_path_reduces_in_memory_and_matches(tmp_path):
    """No reduced decode exists for PNG: the fast path box-reduces the full decode instead."""
    path = tmp_path / "photo.png"
    photo_like(1700, 1280, seed=300).save(path)
    assert fast.reduction(1700, 1280, "phash", 8) == 2
    settings = Settings(allowed_roots=(str(tmp_path),))
    assert bits_apart(hash_ref(str(path), settings)["hash"], str(imagehash.phash(Image.open(path)))) <= 2
