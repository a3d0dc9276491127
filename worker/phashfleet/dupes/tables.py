"""Multi-index block tables: split hashes into blocks, bucket them by chosen blocks, verify bucket pairs.

Pigeonhole: split a hash's bits into ``m`` blocks (any partition). Two hashes at distance ``<= d``
differ in at most ``d`` blocks, so at least ``m - d`` blocks are identical. One table per choice of
``m - d`` blocks, keyed by those blocks, therefore puts every such pair in a common bucket of at
least one table. Keys may be hashed down to fit beside an index in one uint64: that only merges
buckets (more candidates to verify), it never splits equal keys, so no pair is lost.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from phashfleet.dupes.bits import WORD_BITS, distance, popcount

_MIX = np.uint64(0x9E3779B97F4A7C15)  # odd multiplier (2^64 / golden ratio) for multiplicative hashing
_ONES = np.uint64(0xFFFFFFFFFFFFFFFF)
#: Key bits counted (in a table of 2^FILTER_BITS counters) to skip sorting keys no other hash has.
FILTER_BITS = 22
Block = tuple[tuple[int, int], ...]  # a block's bits, as runs of (first bit, length); bit 0 = top of word 0


def bit_units(bits: int, words: int) -> list[tuple[int, int]]:
    """Cut the ``bits`` significant bits into at most 64 runs: single bits for hashes up to 64 bits."""
    first = words * WORD_BITS - bits  # significant bits are the low ones; the rest is zero padding
    size = -(-bits // WORD_BITS)
    return [(start, min(size, first + bits - start)) for start in range(first, first + bits, size)]


def block_layout(bits: int, words: int, blocks: int, weights: Sequence[float] | None = None) -> list[Block]:
    """Partition the significant bits into ``blocks`` blocks of near-equal size.

    Without ``weights`` the blocks are contiguous. With one weight per ``bit_units`` run (its
    entropy), runs are dealt so that each block gets a near-equal share of the weight: skewed bits
    then spread over all blocks instead of making some tables' buckets huge.
    """
    units = bit_units(bits, words)
    if weights is None or blocks > len(units):
        first = words * WORD_BITS - bits
        base, extra = divmod(bits, blocks)
        sizes = [base + (1 if j < extra else 0) for j in range(blocks)]
        return [((first + sum(sizes[:j]), sizes[j]),) for j in range(blocks)]
    base, extra = divmod(len(units), blocks)
    room = [base + (1 if j < extra else 0) for j in range(blocks)]
    load = [0.0] * blocks
    members: list[list[tuple[int, int]]] = [[] for _ in range(blocks)]
    for unit in sorted(range(len(units)), key=lambda i: -weights[i]):
        j = min((j for j in range(blocks) if room[j]), key=lambda j: (load[j], j))
        members[j].append(units[unit])
        load[j] += weights[unit]
        room[j] -= 1
    return [_merge_runs(sorted(runs)) for runs in members]


def _merge_runs(runs: list[tuple[int, int]]) -> Block:
    """Join adjacent runs into one."""
    merged: list[tuple[int, int]] = []
    for start, length in runs:
        if merged and merged[-1][0] + merged[-1][1] == start:
            merged[-1] = (merged[-1][0], merged[-1][1] + length)
        else:
            merged.append((start, length))
    return tuple(merged)


def block_bits(block: Block) -> int:
    """Number of bits in a block."""
    return sum(length for _, length in block)


def unit_entropy(words: np.ndarray, units: Sequence[tuple[int, int]]) -> list[float]:
    """Sum of the bits' binary entropies (from their frequency in ``words``) for each run."""
    shifts = np.arange(WORD_BITS - 1, -1, -1, dtype=np.uint64)
    ones = np.concatenate([((words[:, w, None] >> shifts) & np.uint64(1)).mean(axis=0) for w in range(words.shape[1])])
    p = np.clip(ones, 1e-12, 1 - 1e-12)
    entropy = -(p * np.log2(p) + (1 - p) * np.log2(1 - p))
    return [float(entropy[start : start + length].sum()) for start, length in units]


def _mask(length: int) -> np.uint64:
    return _ONES if length >= WORD_BITS else np.uint64((1 << length) - 1)


def block_value(words: np.ndarray, block: Block) -> np.ndarray:
    """The block's bits as one unsigned int per hash (the smallest dtype): exact up to 64 bits, hashed beyond."""
    size = block_bits(block)
    value = np.zeros(words.shape[0], dtype=np.uint64)
    for start, length in block:
        pos, remaining = start, length
        while remaining:
            word, offset = divmod(pos, WORD_BITS)
            take = min(WORD_BITS - offset, remaining)
            piece = (words[:, word] >> np.uint64(WORD_BITS - offset - take)) & _mask(take)
            if size > WORD_BITS:
                value = value * _MIX + piece
            elif take == WORD_BITS:
                value = piece
            else:
                value = (value << np.uint64(take)) | piece
            pos += take
            remaining -= take
    return value.astype(np.min_scalar_type((1 << min(size, WORD_BITS)) - 1))


def table_key(values: Sequence[np.ndarray], lengths: Sequence[int], budget: int) -> tuple[np.ndarray, int]:
    """Combine block values into one key of at most ``budget`` bits; return it and its width in bits.

    Equal blocks give equal keys.
    """
    total = sum(min(length, WORD_BITS) for length in lengths)
    exact = total <= WORD_BITS and all(length <= WORD_BITS for length in lengths)
    key = values[0].astype(np.uint64)
    for value, length in zip(values[1:], lengths[1:], strict=True):
        if exact:
            key <<= np.uint64(length)
            key |= value
        else:
            key *= _MIX
            key += value
    width = total if exact else WORD_BITS
    if width > budget:
        key = _fold(key, budget)
        width = budget
    return key, width


def _fold(key: np.ndarray, bits: int) -> np.ndarray:
    """Multiplicative hash of 64-bit keys down to ``bits`` bits."""
    return (key * _MIX) >> np.uint64(WORD_BITS - bits)


def index_bits(n: int) -> int:
    """Bits needed to store an index below ``n`` beside a key in one uint64."""
    return max(1, (n - 1).bit_length())


def shared(key: np.ndarray, bits: int) -> np.ndarray | None:
    """Indices whose key may be shared (a superset of those that are), or None when that is most of them.

    Counting keys (folded to FILTER_BITS) is cheaper than sorting them all when few collide.
    """
    n = key.shape[0]
    bins = min(bits, FILTER_BITS)
    if n >= (1 << bins) // 2:
        return None
    slot = (key if bits <= FILTER_BITS else _fold(key, FILTER_BITS)).astype(np.intp)
    crowded = np.bincount(slot, minlength=1 << bins) > 1
    return np.flatnonzero(crowded[slot])


def near_pairs(
    key: np.ndarray, bits: int, words: np.ndarray, max_distance: int, limit: int = 1 << 20
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield chunks of index pairs ``(i, j)`` that share a ``bits``-bit key and lie within ``max_distance``.

    Each pair comes once; a chunk is yielded once about ``limit`` pairs are found.
    """
    n = key.shape[0]
    shift = index_bits(n)
    candidates = shared(key, bits)
    if candidates is None:
        packed = (key << np.uint64(shift)) | np.arange(n, dtype=np.uint64)
    else:
        packed = (key[candidates] << np.uint64(shift)) | candidates.astype(np.uint64)
    packed.sort()  # a value sort of key|index is much faster than argsort of the key
    ids = (packed & _mask(shift)).astype(np.int64)
    packed >>= np.uint64(shift)
    same = packed[1:] == packed[:-1]
    del packed
    rows = words[ids]  # hashes in key order: the comparisons below read them nearly in sequence
    flat = rows[:, 0] if rows.shape[1] == 1 else None
    # Sorted positions p, p+o are in one bucket iff same[p..p+o-1] all hold: grow o while any do.
    active = np.flatnonzero(same)
    offset = 1
    found_a: list[np.ndarray] = []
    found_b: list[np.ndarray] = []
    size = 0
    while active.size:
        other = active + offset
        if flat is not None:
            near = popcount(flat[active] ^ flat[other]) <= max_distance
        else:
            near = distance(rows[active], rows[other]) <= max_distance
        if near.any():
            found_a.append(ids[active[near]])
            found_b.append(ids[other[near]])
            size += found_a[-1].size
            if size >= limit:
                yield np.concatenate(found_a), np.concatenate(found_b)
                found_a, found_b, size = [], [], 0
        active = active[other < same.size]
        active = active[same[active + offset]]
        offset += 1
    if size:
        yield np.concatenate(found_a), np.concatenate(found_b)
