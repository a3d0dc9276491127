"""Permuted-hash block tables: the permutation keeps distances, and each table finds every pair sharing its key."""

from __future__ import annotations

import numpy as np

from phashfleet.dupes.bits import popcount
from phashfleet.dupes.permuted import Permutation, key_first_order, near_pairs_permuted
from phashfleet.dupes.tables import block_layout


def test_permutation_keeps_distances_and_is_undone_by_its_inverse() -> None:
    rng = np.random.default_rng(3)
    words = rng.integers(0, 2**64 - 1, size=1000, dtype=np.uint64, endpoint=True)
    perm = Permutation([int(bit) for bit in rng.permutation(64)])
    moved = perm.apply(words)
    assert not np.array_equal(moved, words)
    assert np.array_equal(perm.inverse().apply(moved), words)
    assert np.array_equal(popcount(moved[1:] ^ moved[:-1]), popcount(words[1:] ^ words[:-1]))


def test_key_first_order_puts_the_kept_blocks_on_top() -> None:
    layout = block_layout(64, 1, 8)
    order = key_first_order(layout, (2, 5))
    assert sorted(order) == list(range(64))
    assert order[:16] == list(range(16, 24)) + list(range(40, 48))


def test_a_table_finds_every_pair_sharing_its_key() -> None:
    rng = np.random.default_rng(4)
    base = rng.integers(0, 2**64 - 1, size=1500, dtype=np.uint64, endpoint=True)
    flips = np.uint64(1) << rng.integers(0, 64, size=1500).astype(np.uint64)
    words = np.unique(np.concatenate([base, base ^ flips]))  # many pairs at distance 1
    layout = block_layout(64, 1, 8)
    kept = (1, 6)
    perm = Permutation(key_first_order(layout, kept))
    found = [
        (int(a), int(b))
        for ca, cb in near_pairs_permuted(words, perm, perm.inverse(), 16, 3)
        for a, b in zip(ca, cb, strict=True)
    ]
    key = perm.apply(words) >> np.uint64(48)
    near = popcount(words[:, None] ^ words[None, :]) <= 3
    same = key[:, None] == key[None, :]
    expected = {(int(a), int(b)) for a, b in zip(*np.nonzero(near & same), strict=True) if a < b}
    pairs = {tuple(sorted(pair)) for pair in found}
    assert expected and expected <= pairs
    assert all(popcount(words[a] ^ words[b]) <= 3 for a, b in pairs)  # extra pairs are true pairs too
    assert len(pairs) == len(found)  # each pair once
