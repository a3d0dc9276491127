"""Open and decode images with Pillow: first frame, a defined mode, alpha flattened on white."""

from __future__ import annotations

import warnings
from typing import BinaryIO

import numpy as np
from PIL import Image, UnidentifiedImageError

from phashfleet.hashing.errors import FileFailed

#: Transparent pixels are composited over this colour before hashing.
BACKGROUND = (255, 255, 255)

try:  # HEIC/HEIF with the optional `heif` extra (Pillow reads AVIF itself)
    from pillow_heif import register_heif_opener
except ImportError:  # pragma: no cover - the extra is optional
    pass
else:
    register_heif_opener()

_ALPHA_MODES = {"RGBA", "RGBa", "LA", "La", "PA"}
_KEPT_MODES = {"1", "L", "RGB", "CMYK"}


def open_image(fp: BinaryIO) -> Image.Image:
    """Open (not yet decode) an image; Pillow's decompression-bomb limit is a coded failure."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(fp)
    except Image.DecompressionBombError as exc:
        raise FileFailed("decompression_bomb", str(exc)) from None
    except UnidentifiedImageError:
        raise FileFailed("decode_error", "not a recognised image format (corrupt or not an image)") from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, TypeError) as exc:
        raise FileFailed("decode_error", f"cannot open image: {exc}") from None


def load(image: Image.Image) -> Image.Image:
    """Decode the pixels of the first frame, turning decoder errors into coded failures."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image.load()
    except Image.DecompressionBombError as exc:
        raise FileFailed("decompression_bomb", str(exc)) from None
    except MemoryError:
        raise FileFailed("too_large", "not enough memory to decode the image") from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, TypeError, ZeroDivisionError) as exc:
        text = str(exc)
        if "truncated" in text:
            raise FileFailed("decode_error", f"truncated image data ({text})") from None
        raise FileFailed("decode_error", text or type(exc).__name__) from None
    return image


def normalize(image: Image.Image) -> Image.Image:
    """Return the image in a mode imagehash treats well, leaving L, RGB, CMYK, 1 and opaque P as they are.

    Alpha is flattened on BACKGROUND (imagehash would hash the hidden colour under it); 16-bit and
    32-bit integer data is scaled to 8 bits (Pillow's own conversion would clip it to white);
    float data in 0..1 is scaled to 0..255; other modes (YCbCr, LAB, HSV, ...) become RGB.
    """
    mode = image.mode
    if mode in _KEPT_MODES:
        return image
    if mode == "P":
        return _flatten(image.convert("RGBA")) if "transparency" in image.info else image
    if mode in _ALPHA_MODES:
        return _flatten(image)
    if mode == "I" or mode.startswith("I;16"):
        return _to_8bit(np.asarray(image), 65535.0)
    if mode == "F":
        data = np.asarray(image, dtype=np.float64)
        finite = data[np.isfinite(data)]
        return _to_8bit(np.nan_to_num(data), 1.0 if finite.size and finite.max() <= 1.0 else 255.0)
    return image.convert("RGB")


def _flatten(image: Image.Image) -> Image.Image:
    """Composite an image with alpha over BACKGROUND; grey stays grey."""
    if image.mode in ("LA", "La"):
        rgba = image.convert("LA").convert("RGBA")
        grey = True
    else:
        rgba = image.convert("RGBA")
        grey = False
    base = Image.new("RGBA", rgba.size, BACKGROUND + (255,))
    flat = Image.alpha_composite(base, rgba).convert("RGB")
    return flat.convert("L") if grey else flat


def _to_8bit(data: np.ndarray, full_scale: float) -> Image.Image:
    """Map data whose white is ``full_scale`` to 8-bit L; 8-bit-range integers pass through."""
    data = data.astype(np.float64)
    if full_scale == 65535.0 and data.size and data.max() <= 255:
        full_scale = 255.0
    scaled = np.clip(np.floor(data * (255.0 / full_scale) + 0.5), 0, 255)
    return Image.fromarray(scaled.astype(np.uint8), "L")
