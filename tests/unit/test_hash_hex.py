"""algorithms.to_hex spells every hash exactly as imagehash's str() does, whatever its shape."""

from __future__ import annotations

import imagehash
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from phashfleet.hashing.algorithms import to_hex

shapes = st.tuples(st.integers(1, 33), st.integers(1, 33))


@settings(max_examples=400, deadline=None)
@given(arrays(np.bool_, shapes))
def test_same_text_as_imagehash(bits):
    value = imagehash.ImageHash(bits)
    assert to_hex(value) == str(value)


def test_the_shapes_our_algorithms_make():
    rng = np.random.default_rng(3)
    for shape in [(8, 8), (4, 4), (32, 32), (16, 16), (14, 3), (14, 12), (8, 9), (1, 1)]:
        for _ in range(50):
            value = imagehash.ImageHash(rng.random(shape) > 0.5)
            assert to_hex(value) == str(value)
    assert to_hex(imagehash.ImageHash(np.zeros((8, 8), bool))) == "0" * 16
    assert to_hex(imagehash.ImageHash(np.ones((14, 3), bool))) == str(imagehash.ImageHash(np.ones((14, 3), bool)))
