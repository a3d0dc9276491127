"""A real-photo corpus: photos shipped in scikit-image's and scikit-learn's wheels, and variants of them.

The photos come from the installed packages (the `test` and `bench` extras), never from the
network. Each one is saved as it is (PNG) and as variants a fleet meets in real collections:
JPEG recompressions at qualities 50..95 with 4:4:4, 4:2:2 and 4:2:0 chroma, grayscale, crops,
downscales, rescales to ~1, ~3 and ~12 MP, and mirrored tilings to 12 MP (fine periodic texture,
the hardest case for an estimate from block means). Files are made once into a versioned cache
folder and reused; `corpus()` lists them.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from PIL import Image

#: Bumped whenever a variant's recipe changes, so cached files are made anew.
VERSION = 1
#: Outside the checkout (beside the built tools), so every clone on a warm machine reuses the files.
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "phash-fleet" / "real-photos" / f"v{VERSION}"

#: photo name -> (distribution, path inside its wheel). Photographs only: no drawings or phantoms.
PHOTOS = {
    "astronaut": ("scikit-image", "skimage/data/astronaut.png"),
    "brick": ("scikit-image", "skimage/data/brick.png"),
    "camera": ("scikit-image", "skimage/data/camera.png"),
    "cell": ("scikit-image", "skimage/data/cell.png"),
    "chelsea": ("scikit-image", "skimage/data/chelsea.png"),
    "coffee": ("scikit-image", "skimage/data/coffee.png"),
    "coins": ("scikit-image", "skimage/data/coins.png"),
    "grass": ("scikit-image", "skimage/data/grass.png"),
    "gravel": ("scikit-image", "skimage/data/gravel.png"),
    "hubble": ("scikit-image", "skimage/data/hubble_deep_field.jpg"),
    "ihc": ("scikit-image", "skimage/data/ihc.png"),
    "moon": ("scikit-image", "skimage/data/moon.png"),
    "motorcycle": ("scikit-image", "skimage/data/motorcycle_left.png"),
    "page": ("scikit-image", "skimage/data/page.png"),
    "retina": ("scikit-image", "skimage/data/retina.jpg"),
    "rocket": ("scikit-image", "skimage/data/rocket.jpg"),
    "text": ("scikit-image", "skimage/data/text.png"),
    "china": ("scikit-learn", "sklearn/datasets/images/china.jpg"),
    "flower": ("scikit-learn", "sklearn/datasets/images/flower.jpg"),
}
QUALITIES = (50, 75, 90, 95)
#: Pillow's `subsampling` values by the name cameras and encoders give them.
SUBSAMPLINGS = {"444": 0, "422": 1, "420": 2}
#: Every (quality, subsampling) pair, cycled over the photos so each pair occurs for several.
JPEG_COMBOS = tuple((q, s) for q in QUALITIES for s in SUBSAMPLINGS)
TWELVE_MP = 12_000_000
TILED_SIZE = (4032, 3024)


class PhotosMissing(RuntimeError):
    """A package that ships the corpus's photos is not installed (install the `test` extra)."""


@dataclass(frozen=True)
class Variant:
    """One corpus file: which photo, which kind of derivation, and its path once made."""

    photo: str
    kind: str
    path: Path


def source(name: str) -> Image.Image:
    """The photo as it ships in its package (RGB or L), decoded."""
    dist, inner = PHOTOS[name]
    try:
        path = Path(metadata.distribution(dist).locate_file(inner))
    except metadata.PackageNotFoundError:
        raise PhotosMissing(f"{dist} is not installed (pip install -e '.[test]')") from None
    if not path.is_file():
        raise PhotosMissing(f"{dist} {metadata.version(dist)} does not ship {inner}")
    with Image.open(path) as image:
        image.load()
        return image.convert("RGB") if image.mode not in ("RGB", "L") else image.copy()


def _scaled(image: Image.Image, pixels: int) -> Image.Image:
    """The image rescaled (aspect kept) to about ``pixels`` pixels: bicubic up, LANCZOS down."""
    scale = math.sqrt(pixels / (image.width * image.height))
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.BICUBIC if scale > 1 else Image.Resampling.LANCZOS)


def _tiled(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """The image mirrored into a 2x2 block, repeated to fill ``size`` (a seamless texture)."""
    w, h = image.size
    block = Image.new(image.mode, (2 * w, 2 * h))
    block.paste(image, (0, 0))
    block.paste(image.transpose(Image.Transpose.FLIP_LEFT_RIGHT), (w, 0))
    block.paste(image.transpose(Image.Transpose.FLIP_TOP_BOTTOM), (0, h))
    block.paste(image.transpose(Image.Transpose.ROTATE_180), (w, h))
    out = Image.new(image.mode, size)
    for top in range(0, size[1], 2 * h):
        for left in range(0, size[0], 2 * w):
            out.paste(block, (left, top))
    return out


def _crop(image: Image.Image, index: int) -> Image.Image:
    """An off-centre crop of 55-80% of each side (where depends on ``index``)."""
    w, h = image.size
    share = 0.55 + 0.05 * (index % 6)
    cw, ch = round(w * share), round(h * share)
    left = (w - cw) * ((index * 7) % 10) // 9
    top = (h - ch) * ((index * 3) % 10) // 9
    return image.crop((left, top, left + cw, top + ch))


def _jpeg(quality: int, subsampling: str) -> tuple[str, dict]:
    """Pillow's JPEG format name and save options for this quality and chroma subsampling."""
    return "JPEG", {"quality": quality, "subsampling": SUBSAMPLINGS[subsampling]}


def _recipes(
    name: str, index: int, large: bool
) -> list[tuple[str, str, Callable[[Image.Image], Image.Image], str, dict]]:
    """(kind, file stem suffix, image builder, format, save options) for one photo's variants."""
    q1, s1 = JPEG_COMBOS[index % len(JPEG_COMBOS)]
    q2, s2 = JPEG_COMBOS[(index + 5) % len(JPEG_COMBOS)]
    q3, s3 = JPEG_COMBOS[(index + 9) % len(JPEG_COMBOS)]
    q4, s4 = JPEG_COMBOS[(index + 2) % len(JPEG_COMBOS)]
    recipes = [
        ("native", "native", lambda im: im, "PNG", {}),
        ("jpeg", f"q{q1}-{s1}", lambda im: im, *_jpeg(q1, s1)),
        ("jpeg", f"q{q2}-{s2}", lambda im: im, *_jpeg(q2, s2)),
        ("grey", "grey-q85", lambda im: im.convert("L"), "JPEG", {"quality": 85}),
        ("crop", f"crop-q{q3}-{s3}", lambda im: _crop(im, index), *_jpeg(q3, s3)),
        (
            "downscale",
            "half",
            lambda im: im.resize((max(1, im.width // 2), max(1, im.height // 2)), Image.Resampling.BICUBIC),
            "PNG",
            {},
        ),
        ("1mp", f"1mp-q{q4}-{s4}", lambda im: _scaled(im, 1_000_000), *_jpeg(q4, s4)),
        ("3mp", "3mp-q90-420", lambda im: _scaled(im, 3_000_000), *_jpeg(90, "420")),
        ("2mp-png", "2mp", lambda im: _scaled(im, 2_000_000), "PNG", {"compress_level": 1}),
    ]
    if large:
        q5, s5 = JPEG_COMBOS[(index + 7) % len(JPEG_COMBOS)]
        q6, s6 = JPEG_COMBOS[(index + 3) % len(JPEG_COMBOS)]
        recipes += [
            ("12mp", f"12mp-q{q5}-{s5}", lambda im: _scaled(im, TWELVE_MP), *_jpeg(q5, s5)),
            ("tiled-12mp", f"tiled-q{q6}-{s6}", lambda im: _tiled(im, TILED_SIZE), *_jpeg(q6, s6)),
        ]
    return recipes


def corpus(folder: Path = CACHE, *, large: bool = True, photos: tuple[str, ...] | None = None) -> list[Variant]:
    """Every variant of every photo (the 12 MP ones only with ``large``), made into ``folder`` if missing."""
    variants = []
    for name in photos or tuple(PHOTOS):
        loaded = None
        for kind, suffix, build, fmt, options in _recipes(name, list(PHOTOS).index(name), large):
            path = folder / f"{name}--{suffix}.{'jpg' if fmt == 'JPEG' else 'png'}"
            if not path.exists():
                loaded = loaded or source(name)
                folder.mkdir(parents=True, exist_ok=True)
                tmp = path.with_name(path.name + ".tmp")
                build(loaded).save(tmp, fmt, **options)
                tmp.rename(path)
            variants.append(Variant(name, kind, path))
    return variants
