"""Find every pair of distinct hashes within a Hamming distance, exactly: block tables or a tiled scan."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from phashfleet.dupes.bits import WORD_BITS, distance
from phashfleet.dupes.components import reduce_edges
from phashfleet.dupes.parallel import default_processes, map_shares
from phashfleet.dupes.permuted import Permutation, key_first_order, near_pairs_permuted
from phashfleet.dupes.tables import (
    FILTER_BITS,
    Block,
    bit_units,
    block_bits,
    block_layout,
    block_value,
    index_bits,
    near_pairs,
    table_key,
    unit_entropy,
)

#: Rough seconds, measured on one core and used only to pick a method: per key sorted, per key
#: counted (the filter before sorting), per candidate pair verified, per word compared by the scan.
SORT_COST = 75e-9
FILTER_COST = 20e-9
PAIR_COST = 30e-9
SCAN_COST = 1.5e-9
MAX_TABLES = 20_000
SAMPLE = 1 << 16  # hashes whose key collisions are counted to plan
#: Fewer distinct hashes than this are searched in one process (a fork would cost more than it saves).
PARALLEL_MIN = 1 << 16
_SCAN_TILE = 1 << 22  # distances computed per scan tile


@dataclass(frozen=True)
class Plan:
    """How the pairs will be found: ``none`` (distance 0), ``all`` (distance >= bits), ``scan`` or ``tables``."""

    method: str
    blocks: int = 0
    tables: int = 0
    cost: float = 0.0
    #: The bits of each block (``tables.block_layout``); None: contiguous blocks.
    layout: tuple[Block, ...] | None = field(default=None, repr=False)


def plan_search(n: int, bits: int, words: int, max_distance: int, rows: np.ndarray | None = None) -> Plan:
    """Pick the method with the lowest estimated cost for ``n`` distinct hashes.

    Costs assume uniformly spread bits unless ``rows`` (the hashes) are given: then bucket sizes
    are measured on a sample, so skewed data gets longer keys.
    """
    if max_distance <= 0 or n < 2:
        return Plan("none")
    if max_distance >= bits:
        return Plan("all")
    best = Plan("scan", cost=n * (n - 1) / 2 * words * SCAN_COST)
    budget = WORD_BITS - index_bits(n)
    sample = None if rows is None else _sample(rows)
    weights = None if sample is None else unit_entropy(sample, bit_units(bits, words))
    for blocks in range(max_distance + 1, bits + 1):
        tables = math.comb(blocks, max_distance)
        if tables > MAX_TABLES or tables * n * FILTER_COST >= best.cost:
            break  # tables only grow with blocks: no later choice can be cheaper
        layout = block_layout(bits, words, blocks, weights)
        lengths = sorted(block_bits(block) for block in layout)
        key_bits = min(sum(lengths[: blocks - max_distance]), budget)
        pairs = n * (n - 1) / 2 / 2.0**key_bits
        cost = tables * (_table_cost(n, key_bits) + pairs * PAIR_COST)
        if cost < best.cost and sample is not None:  # a measured count can only raise the cost
            pairs = max(pairs, _sampled_pairs(sample, n, layout, blocks - max_distance, budget))
            cost = tables * (_table_cost(n, key_bits) + pairs * PAIR_COST)
        if cost < best.cost:
            best = Plan("tables", blocks=blocks, tables=tables, cost=cost, layout=tuple(layout))
    return best


def _sample(rows: np.ndarray) -> np.ndarray:
    """A fixed pseudo-random sample of at most SAMPLE rows."""
    if rows.shape[0] <= SAMPLE:
        return rows
    return rows[np.random.default_rng(0).choice(rows.shape[0], size=SAMPLE, replace=False)]


def _sampled_pairs(sample: np.ndarray, n: int, layout: list[Block], keep: int, budget: int) -> float:
    """Candidate pairs per table over ``n`` hashes, scaled from key collisions in a sample (a few tables)."""
    combos = list(itertools.combinations(range(len(layout)), keep))
    picked = {combos[0], combos[len(combos) // 2], combos[-1]}
    k = int(sample.shape[0])
    found = 0.0
    for kept in picked:
        values = [block_value(sample, layout[j]) for j in kept]
        key, _ = table_key(values, [block_bits(layout[j]) for j in kept], budget)
        counts = np.unique(key, return_counts=True)[1].astype(np.float64)
        found += float((counts * (counts - 1) / 2).sum())
    return found / len(picked) * (n * (n - 1)) / max(1, k * (k - 1))


def _table_cost(n: int, key_bits: int) -> float:
    """Estimated seconds to bucket ``n`` uniformly spread keys of ``key_bits`` bits (pairs not included)."""
    bins = min(key_bits, FILTER_BITS)
    if n < (1 << bins) // 2:  # the same test as tables.shared
        sorted_keys = n * -math.expm1(-n / 2.0**bins)  # keys sharing a counter with another
        return n * FILTER_COST + sorted_keys * SORT_COST
    return n * SORT_COST


def find_edges(
    words: np.ndarray, bits: int, max_distance: int, *, plan: Plan | None = None, processes: int | None = None
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield index arrays ``(a, b)`` whose links connect exactly the components of distance <= max_distance.

    ``words`` must hold distinct hashes (``parse_hex`` rows). Links are pairs within the distance,
    except where a table found more such pairs than hashes: those are replaced by links from each
    member to one member of its component. So the output is for components, not a list of pairs.
    Block tables are split over ``processes`` forked processes (default: ``default_processes()``).
    """
    n = words.shape[0]
    plan = plan or plan_search(n, bits, words.shape[1], max_distance)
    if plan.method == "all":
        rest = np.arange(1, n, dtype=np.int64)
        yield np.zeros_like(rest), rest
    elif plan.method == "scan":
        yield from _scan(words, max_distance)
    elif plan.method == "tables":
        layout = list(plan.layout or block_layout(bits, words.shape[1], plan.blocks))
        yield from _tables(words, layout, max_distance, processes or default_processes())


def _scan(words: np.ndarray, max_distance: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Compare every pair, one tile of rows against all later rows at a time."""
    n, width = words.shape
    for start in range(0, n - 1, max(1, _SCAN_TILE // (n * width))):
        stop = min(n - 1, start + max(1, _SCAN_TILE // (n * width)))
        near = distance(words[start:stop, None, :], words[None, start:, :]) <= max_distance
        rows, cols = np.nonzero(near)
        later = cols > rows  # column c of the tile is row start + c of words
        if later.any():
            yield rows[later] + start, cols[later] + start


def _tables(
    words: np.ndarray, layout: list[Block], max_distance: int, processes: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Run one bucket-and-verify pass per choice of blocks; the tables are shared out over ``processes``."""
    blocks = len(layout)
    sizes = [block_bits(block) for block in layout]
    budget = WORD_BITS - index_bits(words.shape[0])
    combos = list(itertools.combinations(range(blocks), blocks - max_distance))

    def permuted(kept: tuple[int, ...]) -> bool:
        # Most keys collide, so the counting filter cannot help: sort the permuted hashes themselves.
        key_bits = sum(sizes[j] for j in kept)
        return bool(words.shape[1] == 1 and words.shape[0] >= (1 << min(key_bits, FILTER_BITS)) // 2)

    values = [] if all(map(permuted, combos)) else [block_value(words, block) for block in layout]
    flat = words[:, 0]
    order = None
    if words.shape[1] == 1:
        order = None if bool(np.all(flat[1:] > flat[:-1])) else np.argsort(flat)
        flat = flat if order is None else flat[order]

    def pairs_of(kept: tuple[int, ...]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        if permuted(kept):
            perm = Permutation(key_first_order(layout, kept))
            key_bits = sum(sizes[j] for j in kept)
            for a, b in near_pairs_permuted(flat, perm, perm.inverse(), key_bits, max_distance):
                yield (a, b) if order is None else (order[a], order[b])
            return
        key, key_bits = table_key([values[j] for j in kept], [sizes[j] for j in kept], budget)
        yield from near_pairs(key, key_bits, words, max_distance)

    def some_tables(share: Sequence[tuple[int, ...]]) -> tuple[np.ndarray, np.ndarray]:
        found_a: list[np.ndarray] = []
        found_b: list[np.ndarray] = []
        held = 0
        for kept in share:
            for a, b in pairs_of(kept):
                found_a.append(a)
                found_b.append(b)
                held += a.size
                if held > words.shape[0]:  # dense data: keep what is returned O(n)
                    a_all, b_all = reduce_edges(np.concatenate(found_a), np.concatenate(found_b))
                    found_a, found_b, held = [a_all], [b_all], a_all.size
        if not found_a:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        return np.concatenate(found_a).astype(np.int64, copy=False), np.concatenate(found_b).astype(
            np.int64, copy=False
        )

    if processes <= 1 or words.shape[0] < PARALLEL_MIN:
        for kept in combos:
            yield some_tables([kept])
        return
    yield from map_shares(some_tables, combos, processes)
