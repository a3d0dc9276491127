"""Permuted-hash block tables: the permutation keeps distances, and each table finds every pair sharing its key."""

from __future__ import annotations

import numpy as np
import pytest

from phashfleet.dupes import permuted
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


@pytest.mark.parametrize("kept", [(0, 1, 2), (5, 7, 8), (0, 4, 8), (1, 3, 6)])
def test_shifted_runs_and_look_ups_permute_alike(monkeypatch: pytest.MonkeyPatch, kept: tuple[int, ...]) -> None:
    words = np.random.default_rng(5).integers(0, 2**64 - 1, size=20_000, dtype=np.uint64, endpoint=True)
    perm = Permutation(key_first_order(block_layout(64, 1, 9), kept))
    assert 1 <= len(perm.runs) <= permuted._MAX_RUNS
    by_runs = perm.apply(words)
    assert np.array_equal(perm.inverse().apply(by_runs), words)
    monkeypatch.setattr(permuted, "_MAX_RUNS", 0)
    assert np.array_equal(perm.apply(words), by_runs)
    assert np.array_equal(popcount(by_runs ^ by_runs[::-1]), popcount(words ^ words[::-1]))


def test_key_first_order_puts_the_kept_blocks_on_top() -> None:
    layout = block_layout(64, 1, 8)
    order = key_first_order(layout, (2, 5))
    assert sorted(order) == list(range(64))
    assert order[:16] == list(range(16, 24)) + list(range(40, 48))


@pytest.mark.parametrize(
    ("kept", "key_bits", "span", "scan"),
    [((1, 6), 16, 64, 1 << 15), ((1, 6), 16, 1, 7), ((3,), 8, 2, 16), ((3,), 8, 64, 100)],
)
def test_a_table_finds_every_pair_sharing_its_key(
    monkeypatch: pytest.MonkeyPatch, kept: tuple[int, ...], key_bits: int, span: int, scan: int
) -> None:
    # Small spans and slices send long runs of one key (8-bit keys: ~12 words each) down the gathered path.
    monkeypatch.setattr(permuted, "_SPAN", span)
    monkeypatch.setattr(permuted, "_SCAN", scan)
    deep = []
    real_deep = permuted._deep_pairs
    monkeypatch.setattr(permuted, "_deep_pairs", lambda *args: deep.append(1) or real_deep(*args))
    rng = np.random.default_rng(4)
    base = rng.integers(0, 2**64 - 1, size=1500, dtype=np.uint64, endpoint=True)
    flips = np.uint64(1) << rng.integers(0, 64, size=1500).astype(np.uint64)
    words = np.unique(np.concatenate([base, base ^ flips]))  # many pairs at distance 1
    layout = block_layout(64, 1, 8)
    perm = Permutation(key_first_order(layout, kept))
    found = [
        (int(a), int(b))
        for ca, cb in near_pairs_permuted(words, perm, perm.inverse(), key_bits, 3, limit=50)
        for a, b in zip(ca, cb, strict=True)
    ]
    key = perm.apply(words) >> np.uint64(64 - key_bits)
    near = popcount(words[:, None] ^ words[None, :]) <= 3
    same = key[:, None] == key[None, :]
    expected = {(int(a), int(b)) for a, b in zip(*np.nonzero(near & same), strict=True) if a < b}
    pairs = {tuple(sorted(pair)) for pair in found}
    assert expected and expected == pairs
    assert len(pairs) == len(found)  # each pair once
    assert bool(deep) == (span <= 2)
