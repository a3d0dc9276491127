"""Hashes as rows of 64-bit words: parse hex strings, count differing bits."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

WORD_BITS = 64
_HEX_PER_WORD = WORD_BITS // 4


class HashFormatError(ValueError):
    """A hash string is not hex, or its length differs from the others."""

    def __init__(self, index: int, value: object, problem: str) -> None:
        super().__init__(f"hash #{index} {value!r}: {problem}")
        self.index = index
        self.value = value
        self.problem = problem


def words_for(hex_len: int) -> int:
    """Number of 64-bit words holding a hash of ``hex_len`` hex digits."""
    return max(1, -(-hex_len // _HEX_PER_WORD))


def parse_hex(hashes: Sequence[str], hex_len: int | None = None, *, first_index: int = 0) -> np.ndarray:
    """Parse equal-length hex hashes into an ``(n, words)`` uint64 array, most significant word first.

    Shorter hashes are left-padded with zero bits to whole words, so distances are unchanged.
    ``first_index`` only numbers the hashes in error messages.
    """
    if hex_len is None:
        hex_len = len(hashes[0]) if len(hashes) else 1
    words = words_for(hex_len)
    n = len(hashes)
    if n == 0:
        return np.zeros((0, words), dtype=np.uint64)
    if hex_len < 1:
        _raise_first_bad(hashes, hex_len, first_index)
    try:
        same_length = set(map(len, hashes)) == {hex_len}  # len() in C: no Python step per hash
        pad = "0" * (words * _HEX_PER_WORD - hex_len)
        text = pad + pad.join(hashes) if pad else "".join(hashes)
        raw = bytes.fromhex(text) if same_length else b""
    except (TypeError, ValueError):  # not strings (no len, or not joinable), or not hex
        raw = b""
    if not raw:
        _raise_first_bad(hashes, hex_len, first_index)
    if len(raw) != n * words * 8:  # fromhex skips whitespace; a hash holding some is malformed
        _raise_first_bad(hashes, hex_len, first_index)
    return np.frombuffer(raw, dtype=">u8").astype(np.uint64).reshape(n, words)


def _raise_first_bad(hashes: Sequence[str], hex_len: int, first_index: int) -> None:
    """Raise HashFormatError naming the first hash that is not ``hex_len`` hex digits."""
    digits = set("0123456789abcdefABCDEF")
    for i, h in enumerate(hashes):
        if not isinstance(h, str):
            raise HashFormatError(first_index + i, h, "not a string")
        if not h:
            raise HashFormatError(first_index + i, h, "empty hash")
        if len(h) != hex_len:
            raise HashFormatError(first_index + i, h, f"{len(h)} hex digits, expected {hex_len} like the others")
        if not set(h) <= digits:
            raise HashFormatError(first_index + i, h, "not a hex string")
    raise AssertionError("no malformed hash found")  # pragma: no cover


def popcount_swar(x: np.ndarray) -> np.ndarray:
    """Number of set bits of each uint64 element (as uint8), by parallel bit sums (numpy < 2.0)."""
    x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return ((x * np.uint64(0x0101010101010101)) >> np.uint64(56)).astype(np.uint8)


#: Number of set bits of each uint64 element.
popcount = getattr(np, "bitwise_count", popcount_swar)


def distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamming distance between word rows ``a`` and ``b`` (broadcast over leading axes)."""
    counts: np.ndarray = popcount(np.bitwise_xor(a, b))
    if counts.shape[-1] == 1:
        single: np.ndarray = counts[..., 0].astype(np.int32)
        return single
    total: np.ndarray = counts.sum(axis=-1, dtype=np.int32)
    return total
