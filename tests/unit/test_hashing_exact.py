"""exact=True is bit-identical to imagehash for every algorithm, many sizes and the common formats."""

from __future__ import annotations

from pathlib import Path

import imagehash
import pytest
from PIL import Image

from harness.synthetic import photo_like
from phashfleet.hashing import Settings, hash_ref
from phashfleet.hashing.algorithms import colorhash_binbits
from phashfleet.job.spec import parse_spec

SIZES = {
    "phash": (4, 7, 8, 16, 32),
    "dhash": (4, 8, 11, 16, 32),
    "ahash": (4, 8, 13, 16, 32),
    "whash": (4, 8, 16, 32),
    "colorhash": (4, 8, 16, 32),
}
REFERENCE = {
    "phash": imagehash.phash,
    "dhash": imagehash.dhash,
    "ahash": imagehash.average_hash,
    "whash": imagehash.whash,
    "colorhash": lambda image, size: imagehash.colorhash(image, binbits=colorhash_binbits(size)),
}


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """The same photo-like picture saved in every format and opaque mode imagehash handles."""
    folder = tmp_path_factory.mktemp("exact")
    photo = photo_like(157, 117, seed=11)
    made = {
        "rgb.jpg": (photo, {"quality": 90}),
        "grey.jpg": (photo.convert("L"), {}),
        "cmyk.jpg": (photo.convert("CMYK"), {}),
        "rgb.png": (photo, {}),
        "grey.png": (photo.convert("L"), {}),
        "palette.png": (photo.quantize(64), {}),
        "bilevel.png": (photo.convert("1"), {}),
        "first.gif": (photo, {}),
        "rgb.bmp": (photo, {}),
        "rgb.tiff": (photo, {}),
        "rgb.webp": (photo, {"quality": 80}),
    }
    paths = {}
    for name, (image, options) in made.items():
        paths[name] = folder / name
        image.save(paths[name], **options)
    return paths


@pytest.mark.parametrize("algorithm", list(SIZES))
def test_exact_matches_imagehash_bit_for_bit(files, algorithm):
    for size in SIZES[algorithm]:
        settings = Settings(
            algorithm=algorithm, hash_size=size, exact=True, allowed_roots=(str(next(iter(files.values())).parent),)
        )
        for name, path in files.items():
            record = hash_ref(str(path), settings)
            expected = str(REFERENCE[algorithm](Image.open(path), size))
            assert record["status"] == "ok", (name, record)
            assert record["hash"] == expected, (algorithm, size, name)


#: imagehash's functions called with their own defaults only.
IMAGEHASH_DEFAULTS = {
    "phash": imagehash.phash,
    "dhash": imagehash.dhash,
    "ahash": imagehash.average_hash,
    "whash": imagehash.whash,
    "colorhash": imagehash.colorhash,
}


@pytest.mark.parametrize("algorithm", list(SIZES))
def test_exact_at_the_default_hash_size_is_imagehash_with_its_own_defaults(files, algorithm):
    """A job that sets only its algorithm gets what imagehash gives with no arguments (colorhash: binbits 3)."""
    hash_size = parse_spec({"source": {"uri": "/d"}, "algorithm": algorithm}).hash_size
    path = files["rgb.png"]
    settings = Settings(algorithm=algorithm, hash_size=hash_size, exact=True, allowed_roots=(str(path.parent),))
    assert hash_ref(str(path), settings)["hash"] == str(IMAGEHASH_DEFAULTS[algorithm](Image.open(path)))


@pytest.mark.parametrize("algorithm", list(SIZES))
def test_exact_does_not_shrink_a_large_jpeg(tmp_path, algorithm):
    """Where the fast path would decode at reduced size, exact mode still decodes it all."""
    path = tmp_path / "big.jpg"
    photo_like(1400, 1050, seed=12).save(path, quality=90)
    settings = Settings(algorithm=algorithm, hash_size=8, exact=True, allowed_roots=(str(tmp_path),))
    assert hash_ref(str(path), settings)["hash"] == str(REFERENCE[algorithm](Image.open(path), 8))


def test_record_fields_describe_the_file(files):
    path = files["rgb.jpg"]
    record = hash_ref(str(path), Settings(exact=True, allowed_roots=(str(path.parent),)))
    assert record["width"] == 157 and record["height"] == 117
    assert record["bytes"] == path.stat().st_size
    assert record["algorithm"] == "phash" and record["hash_size"] == 8
    assert len(record["hash"]) == 16 and record["reason"] is None


@pytest.mark.parametrize("algorithm", list(SIZES))
def test_fast_path_is_exact_when_nothing_can_be_shrunk(files, algorithm):
    """A small image is decoded at full size in fast mode too: the hash is imagehash's."""
    path = files["rgb.jpg"]
    settings = Settings(algorithm=algorithm, hash_size=8, exact=False, allowed_roots=(str(path.parent),))
    assert hash_ref(str(path), settings)["hash"] == str(REFERENCE[algorithm](Image.open(path), 8))


def test_settings_refuse_what_imagehash_cannot_do():
    with pytest.raises(ValueError, match="power-of-two"):
        Settings(algorithm="whash", hash_size=12)
    with pytest.raises(ValueError, match="hash_size"):
        Settings(hash_size=3)
    with pytest.raises(ValueError, match="algorithm"):
        Settings(algorithm="md5")
    with pytest.raises(ValueError, match="timeout"):
        Settings(timeout_seconds=0)
