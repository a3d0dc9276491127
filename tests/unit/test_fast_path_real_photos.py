"""The fast path's promise on real photographs: at most 2 bits from imagehash, at least 95% identical.

The corpus (tests/harness/photos.py) is photos shipped in scikit-image's and scikit-learn's wheels
and their variants: JPEG recompressions at qualities 50-95 with 4:4:4/4:2:2/4:2:0 chroma, grey,
crops, rescales to 1, 3 and 12 MP, PNGs and mirrored 12 MP tilings (brick, a printed page, ...).
The reference is imagehash called with its own defaults, which is what hashSize 8 means.
"""

from __future__ import annotations

import imagehash
import pytest
from PIL import Image

from harness.ci import missing
from harness.photos import PhotosMissing, corpus
from phashfleet.hashing import Settings, hash_ref

IMAGEHASH_DEFAULTS = {
    "phash": imagehash.phash,
    "dhash": imagehash.dhash,
    "ahash": imagehash.average_hash,
    "whash": imagehash.whash,
    "colorhash": imagehash.colorhash,
}


def bits_apart(a: str, b: str) -> int:
    return bin(int(a, 16) ^ int(b, 16)).count("1")


@pytest.fixture(scope="module")
def photos():
    """Every corpus file with imagehash's hash for each algorithm (one decode per file)."""
    try:
        variants = corpus()
    except PhotosMissing as exc:
        missing(str(exc))
    found = []
    for variant in variants:
        with Image.open(variant.path) as image:
            image.load()
            found.append((variant, {a: str(fn(image)) for a, fn in IMAGEHASH_DEFAULTS.items()}))
    return found


def test_the_corpus_has_what_the_promise_is_about(photos):
    kinds = {variant.kind for variant, _ in photos}
    assert {"native", "jpeg", "grey", "crop", "12mp", "tiled-12mp", "2mp-png"} <= kinds
    names = {variant.path.name for variant, _ in photos}
    assert {"brick--native.png", "page--native.png"} <= names
    for quality in (50, 75, 90, 95):
        for subsampling in ("444", "422", "420"):
            assert any(f"q{quality}-{subsampling}" in name for name in names), (quality, subsampling)
    assert sum(variant.kind in ("12mp", "tiled-12mp") for variant, _ in photos) >= 30


@pytest.mark.parametrize("algorithm", list(IMAGEHASH_DEFAULTS))
def test_fast_path_is_within_two_bits_and_95_percent_identical(photos, algorithm):
    roots = (str(photos[0][0].path.parent),)
    settings = Settings(algorithm=algorithm, hash_size=8, exact=False, allowed_roots=roots)
    off = {}
    for variant, expected in photos:
        got = hash_ref(str(variant.path), settings)["hash"]
        bits = bits_apart(got, expected[algorithm])
        if bits:
            off[variant.path.name] = bits
    assert max(off.values(), default=0) <= 2, off
    assert len(off) <= 0.05 * len(photos), off


@pytest.mark.parametrize("algorithm", list(IMAGEHASH_DEFAULTS))
def test_exact_at_the_default_hash_size_is_imagehash_called_with_no_arguments(photos, algorithm):
    """Exact mode at hashSize 8 (the default) is imagehash's function with its own defaults."""
    picked = [(v, e) for v, e in photos if v.kind in ("native", "jpeg", "grey", "12mp")][::3]
    settings = Settings(algorithm=algorithm, exact=True, allowed_roots=(str(picked[0][0].path.parent),))
    assert settings.hash_size == 8
    for variant, expected in picked:
        assert hash_ref(str(variant.path), settings)["hash"] == expected[algorithm], variant.path.name
