"""Near-duplicate groups: connected components of "Hamming distance <= max_distance" over hashes."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from phashfleet.dupes.bits import WORD_BITS, distance, parse_hex
from phashfleet.dupes.components import DisjointSets, index_dtype
from phashfleet.dupes.search import Plan, find_edges, plan_search

#: Groups with up to this many distinct hashes get an exact ``max_distance`` (all pairs compared);
#: larger ones get a lower bound (it never overstates) from a few farthest-point sweeps, in O(size).
EXACT_DIAMETER_LIMIT = 1024
_SWEEPS = 4
_TILE = 1 << 21


@dataclass
class Groups:
    """Near-duplicate groups over ``n`` hashes, numbered 0.. by the order of their first member."""

    #: Group id of each hash, -1 for a hash with no near-duplicate.
    labels: np.ndarray
    #: Number of groups.
    count: int
    #: How the pairs were searched.
    plan: Plan
    #: Distinct hashes (``parse_hex`` rows) and, per input hash, its row there.
    distinct: np.ndarray
    inverse: np.ndarray

    @property
    def duplicate_files(self) -> int:
        """Hashes that belong to some group."""
        return int(np.count_nonzero(self.labels >= 0))

    def ids(self) -> list[int | None]:
        """Group id per input hash, None where it has no near-duplicate."""
        return [None if g < 0 else g for g in self.labels.tolist()]

    def sizes(self) -> np.ndarray:
        """Members per group, indexed by group id."""
        return np.bincount(self.labels[self.labels >= 0], minlength=self.count)

    def members(self) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(group id, input positions in order)`` for each group, by group id."""
        grouped = np.flatnonzero(self.labels >= 0)
        ordered = grouped[np.argsort(self.labels[grouped], kind="stable")]
        sizes = self.sizes()
        stops = np.cumsum(sizes)
        for group, (start, stop) in enumerate(zip((stops - sizes).tolist(), stops.tolist(), strict=True)):
            yield group, ordered[start:stop]

    def max_distance(self, positions: np.ndarray) -> int:
        """Largest distance between two of these hashes (see ``EXACT_DIAMETER_LIMIT``)."""
        rows = self.distinct[np.unique(self.inverse[positions])]
        return diameter(rows)


def diameter(rows: np.ndarray) -> int:
    """Largest pairwise distance among distinct hash rows: exact up to the limit, else a lower bound."""
    k, width = rows.shape
    if k < 2:
        return 0
    if k > EXACT_DIAMETER_LIMIT:
        best, current = 0, 0
        for _ in range(_SWEEPS):
            far = distance(rows[current], rows)
            current = int(np.argmax(far))
            best = max(best, int(far[current]))
        return best
    step = max(1, _TILE // (k * width))
    return max(int(distance(rows[i : i + step, None, :], rows[None, :, :]).max()) for i in range(0, k, step))


def as_words(hashes: Sequence[str] | np.ndarray, bits: int | None = None) -> tuple[np.ndarray, int]:
    """Hashes as ``(n, words)`` uint64 rows plus their bit length (hex digits x 4 unless given)."""
    if isinstance(hashes, np.ndarray) and hashes.dtype.kind in "ui":
        words = hashes.astype(np.uint64, copy=False)
        if words.ndim == 1:
            words = words[:, None]
        return words, bits or words.shape[1] * WORD_BITS
    hashes = list(hashes)
    hex_len = len(hashes[0]) if hashes else 16
    return parse_hex(hashes, hex_len), bits or 4 * hex_len


def find_groups(
    hashes: Sequence[str] | np.ndarray, max_distance: int, *, bits: int | None = None, processes: int | None = None
) -> Groups:
    """Group hashes (hex strings or ``parse_hex`` rows) into connected components of distance <= max_distance.

    Identical hashes always share a group. A hash alone in its component gets no group (-1).
    ``bits`` is the hash length (default: hex digits x 4); ``processes`` the search processes (default: ``parallel.default_processes()``).
    """
    if max_distance < 0:
        raise ValueError(f"max_distance must be >= 0, got {max_distance}")
    words, bits = as_words(hashes, bits)
    n = words.shape[0]
    distinct, inverse = unique_rows(words)
    plan = plan_search(distinct.shape[0], bits, words.shape[1], max_distance, distinct)
    sets = DisjointSets(distinct.shape[0])
    for a, b in find_edges(distinct, bits, max_distance, plan=plan, processes=processes):
        sets.union(a, b)
    component = sets.compress()[inverse]
    del sets
    crowded = np.bincount(component, minlength=max(1, distinct.shape[0])) >= 2
    grouped = np.flatnonzero(crowded[component])
    del crowded
    labels = np.full(n, -1, dtype=index_dtype(n))
    _, first, which = np.unique(component[grouped], return_index=True, return_inverse=True)
    del component
    rank = np.empty(first.size, dtype=labels.dtype)
    rank[np.argsort(first)] = np.arange(first.size)
    labels[grouped] = rank[which.reshape(-1)]
    return Groups(labels=labels, count=int(first.size), plan=plan, distinct=distinct, inverse=inverse)


def unique_rows(words: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct rows of ``words`` and, per row, its index there (int32 below 2^31 rows)."""
    n = words.shape[0]
    if words.shape[1] != 1:
        distinct, inverse = np.unique(words, axis=0, return_inverse=True)
        return distinct, inverse.reshape(-1).astype(index_dtype(n))
    # np.unique(return_inverse=True) holds four int64 arrays at once; this holds one, then int32s.
    order = np.argsort(words[:, 0])
    ordered = words[order, 0]
    starts = np.empty(n, dtype=bool)
    starts[:1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=starts[1:])
    distinct = ordered[starts][:, None]
    del ordered
    inverse = np.empty(n, dtype=index_dtype(n))
    inverse[order] = np.cumsum(starts, dtype=inverse.dtype) - 1
    return distinct, inverse


def group_ids(
    hashes: Sequence[str] | np.ndarray, max_distance: int, *, bits: int | None = None, processes: int | None = None
) -> list[int | None]:
    """Group id per hash (None for a hash with no near-duplicate); see ``find_groups``."""
    return find_groups(hashes, max_distance, bits=bits, processes=processes).ids()
