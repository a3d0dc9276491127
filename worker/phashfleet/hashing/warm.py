"""Import and exercise everything hashing loads lazily, so the first real file is not slowed.

Imported by the hashing pool's fork server: every child it forks starts warm, and a file's
timeout measures the file, not scipy's import.
"""

from __future__ import annotations

import io

from PIL import Image


def warm_up() -> None:
    """Load Pillow's plugins, scipy's DCT and PyWavelets, and run every algorithm once on a tiny image."""
    import pywt  # noqa: F401 - imagehash.whash imports it on first use
    import scipy.fftpack  # noqa: F401 - imagehash.phash imports it on first use

    from phashfleet.hashing.algorithms import ALGORITHMS, exact_hash
    from phashfleet.hashing.fast import fast_hash

    Image.init()
    buffer = io.BytesIO()
    Image.linear_gradient("L").convert("RGB").resize((64, 48)).save(buffer, "JPEG")
    for algorithm in ALGORITHMS:
        exact_hash(Image.open(io.BytesIO(buffer.getvalue())), algorithm, 8)
        fast_hash(Image.open(io.BytesIO(buffer.getvalue())), algorithm, 8)


warm_up()
