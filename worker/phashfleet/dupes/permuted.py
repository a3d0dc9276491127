"""Block tables for hashes of one word: each table sorts the hashes themselves, bits permuted key-first.

A table's kept blocks are moved to the top bits by a bit permutation (Hamming distance is
unchanged), so sorting the permuted words puts equal keys side by side and one XOR of neighbours
gives both "same key" (no bits set above the key's) and the distance: no index beside the key,
no gather of hash rows, one uint64 per hash per table. Pairs found are mapped back to indices by
undoing the permutation and a binary search in the sorted hashes.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence

import numpy as np

from phashfleet.dupes.bits import WORD_BITS, popcount
from phashfleet.dupes.tables import FILTER_BITS, Block

_LUT_BITS = 16  # input bits looked up at once: 4 lookups per word, tables of 512 KB
_CHUNK = 1 << 13  # words permuted at a time (keeps the lookups' temporaries in cache)
_MAX_RUNS = 8  # permutations of at most this many runs of consecutive bits are applied by shifts
_SCAN = 1 << 15  # sorted words compared per slice: the slices and their XOR stay in cache
_SPARSE = 8  # slices give way to gathered positions once fewer than 1 in this many go on
_SPAN = 64  # neighbour offsets compared by slices; longer runs of one key go on with gathered positions


def key_first_order(layout: Sequence[Block], kept: Sequence[int]) -> list[int]:
    """Source bit (0 = top) of each destination bit, top first: kept blocks, other blocks, then padding."""
    order = [bit for j in kept for start, length in layout[j] for bit in range(start, start + length)]
    order += [
        bit
        for j in range(len(layout))
        if j not in kept
        for start, length in layout[j]
        for bit in range(start, start + length)
    ]
    used = set(order)
    return order + [bit for bit in range(WORD_BITS) if bit not in used]


class Permutation:
    """A bit permutation of uint64 words: a few shifted runs of bits, or table look-ups of 16 bits at a time."""

    def __init__(self, order: Sequence[int]) -> None:
        self.order = list(order)
        self.runs: list[tuple[int, np.uint64]] = []  # (left shift, negative for right; mask at the destination)
        self._luts: list[np.ndarray] | None = None
        start = 0
        for dest in range(1, WORD_BITS + 1):
            if dest == WORD_BITS or self.order[dest] != self.order[dest - 1] + 1:
                length = dest - start
                mask = ((1 << length) - 1) << (WORD_BITS - dest)
                self.runs.append((self.order[start] - start, np.uint64(mask)))
                start = dest

    @property
    def luts(self) -> list[np.ndarray]:
        """Image of each 16-bit piece (least significant first) under the permutation."""
        if self._luts is None:
            dest = np.empty(WORD_BITS, dtype=np.uint64)  # destination bit (0 = least significant) of each source bit
            dest[WORD_BITS - 1 - np.asarray(self.order)] = np.arange(WORD_BITS - 1, -1, -1, dtype=np.uint64)
            self._luts = [_lut(dest[first : first + _LUT_BITS]) for first in range(0, WORD_BITS, _LUT_BITS)]
        return self._luts

    def inverse(self) -> Permutation:
        """The permutation that undoes this one."""
        back = [0] * WORD_BITS
        for dest, source in enumerate(self.order):
            back[source] = dest
        return Permutation(back)

    def apply(self, words: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """The permuted words (into ``out`` if given)."""
        out = np.empty_like(words) if out is None else out
        words = np.ascontiguousarray(words, dtype=np.uint64)
        image = np.empty(min(_CHUNK, words.size), dtype=np.uint64)
        if len(self.runs) <= _MAX_RUNS:  # three operations a run beat four look-ups (key-first orders: 2-8 runs)
            for start in range(0, words.size, _CHUNK):
                part, into = words[start : start + _CHUNK], out[start : start + _CHUNK]
                moved = image[: into.size]
                into[:] = 0
                for shift, mask in self.runs:
                    if shift > 0:
                        np.left_shift(part, np.uint64(shift), out=moved)
                    elif shift < 0:
                        np.right_shift(part, np.uint64(-shift), out=moved)
                    else:
                        moved[:] = part
                    moved &= mask
                    into |= moved
            return out
        pieces = words.view(np.uint16).reshape(-1, 4)  # the four 16-bit look-up indices, read in place
        column = [k if sys.byteorder == "little" else 3 - k for k in range(4)]
        luts = self.luts
        for start in range(0, words.size, _CHUNK):
            part, into = pieces[start : start + _CHUNK], out[start : start + _CHUNK]
            np.take(luts[0], part[:, column[0]], out=into)
            for k in range(1, len(luts)):
                np.take(luts[k], part[:, column[k]], out=image[: into.size])
                into |= image[: into.size]
        return out


def _lut(dest: np.ndarray) -> np.ndarray:
    """Image of every value of ``len(dest)`` bits whose bit ``b`` goes to bit ``dest[b]``."""
    lut = np.zeros(1, dtype=np.uint64)
    for bit in range(dest.size):  # doubling: entries with bit b set are the previous ones plus b's image
        lut = np.concatenate([lut, lut | (np.uint64(1) << dest[bit])])
    return lut


def near_pairs_permuted(
    words: np.ndarray, perm: Permutation, back: Permutation, key_bits: int, max_distance: int, limit: int = 1 << 20
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield chunks of index pairs into sorted distinct ``words`` within ``max_distance`` sharing a table key.

    ``back`` undoes ``perm``. The key is the top ``key_bits`` bits of the permuted words. Each pair comes
    once. Sorted words are compared with their next ``_SPAN`` neighbours slice by slice (in cache).
    """
    packed = perm.apply(words)
    rest = WORD_BITS - key_bits  # bits below the key
    bound = np.uint64(1) << np.uint64(rest)
    bins = min(key_bits, FILTER_BITS)
    if words.size < (1 << bins) // 2:  # sparse keys: count them first, sort only those that collide
        key = packed >> np.uint64(rest)
        slot = (key if key_bits <= FILTER_BITS else key >> np.uint64(key_bits - FILTER_BITS)).astype(np.intp)
        del key
        packed = packed[(np.bincount(slot, minlength=1 << bins) > 1)[slot]]
        del slot
    packed.sort()
    found: list[np.ndarray] = []  # permuted words, both ends of each pair side by side
    size = 0
    deep = False  # some key is shared by more than _SPAN + 1 words
    for start in range(0, packed.size - 1, _SCAN):
        part = packed[start : start + _SCAN + _SPAN]
        starts = min(_SCAN, part.size - 1)  # pairs (p, p + offset) are counted in the chunk holding p
        active: np.ndarray | None = None  # once few positions go on: those, instead of whole slices
        for offset in range(1, _SPAN + 1):
            if offset >= part.size:
                break
            if active is None:
                first = part[: min(starts, part.size - offset)]
                xor = first ^ part[offset : offset + first.size]
                same = xor < bound  # sorted: p and p + offset share a key only if all between do
                count = int(np.count_nonzero(same))
                if not count:
                    break
                hit = np.flatnonzero(same & (popcount(xor) <= max_distance))
                if count * _SPARSE < same.size:
                    active = np.flatnonzero(same)
            else:
                active = active[active + offset < part.size]
                xor = part[active] ^ part[active + offset]
                same = xor < bound
                active = active[same]
                if not active.size:
                    break
                hit = active[popcount(xor[same]) <= max_distance]
            if hit.size:
                found.append(np.stack([part[hit], part[hit + offset]]))
                size += hit.size
        else:
            deep = True
        if size >= limit:
            yield _indices(words, back, found)
            found, size = [], 0
    if deep:
        yield from _deep_pairs(words, back, packed, bound, max_distance, limit, found)
    elif size:
        yield _indices(words, back, found)


def _deep_pairs(
    words: np.ndarray,
    back: Permutation,
    packed: np.ndarray,
    bound: np.uint64,
    max_distance: int,
    limit: int,
    found: list[np.ndarray],
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The pairs at offsets past _SPAN in sorted ``packed``, tracking only the positions whose key run goes on."""
    size = sum(chunk.shape[1] for chunk in found)
    active = np.flatnonzero((packed[_SPAN:] ^ packed[:-_SPAN]) < bound)
    offset = _SPAN + 1
    while active.size:
        active = active[active + offset < packed.size]
        other = active + offset
        xor = packed[active] ^ packed[other]
        keep = xor < bound
        active, xor, other = active[keep], xor[keep], other[keep]
        near = popcount(xor) <= max_distance
        if near.any():
            found.append(np.stack([packed[active[near]], packed[other[near]]]))
            size += found[-1].shape[1]
            if size >= limit:
                yield _indices(words, back, found)
                found, size = [], 0
        offset += 1
    if size:
        yield _indices(words, back, found)


def _indices(words: np.ndarray, back: Permutation, found: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Indices into sorted ``words`` of the pairs' permuted words."""
    both = back.apply(np.concatenate(found, axis=1).reshape(-1))
    order = np.argsort(both)  # sorted queries read ``words`` in order: several times faster at 10M words
    index = np.empty(both.size, dtype=np.intp)
    index[order] = np.searchsorted(words, both[order])
    return index[: index.size // 2], index[index.size // 2 :]
