"""Near-duplicate grouping checked against a brute-force reference on generated hashes."""

from __future__ import annotations

import math
import os
from collections import Counter

import numpy as np
import pytest

from phashfleet.dupes import (
    HashFormatError,
    PathTable,
    RecordError,
    find_groups,
    group_ids,
    group_records,
    grouping,
    parallel,
    parse_hex,
    search,
    streaming,
    tables,
)
from phashfleet.dupes.bits import distance, popcount_swar
from phashfleet.dupes.components import DisjointSets, reduce_edges
from phashfleet.dupes.search import Plan, find_edges, plan_search
from phashfleet.dupes.tables import near_pairs


def make_hashes(rng: np.random.Generator, n: int, bits: int, spread: int) -> list[str]:
    """Hex hashes of ``bits`` bits: clusters around random centres, each member up to ``spread`` flips away."""
    centres = [int(rng.integers(0, 2**62)) << max(0, bits - 62) for _ in range(max(1, n // 4))]
    centres = [(c ^ int.from_bytes(rng.bytes(bits // 8 + 1), "big")) % (1 << bits) for c in centres]
    out = []
    for _ in range(n):
        value = centres[int(rng.integers(len(centres)))]
        for bit in rng.choice(bits, size=int(rng.integers(0, spread + 1)), replace=False):
            value ^= 1 << int(bit)
        out.append(format(value, f"0{math.ceil(bits / 4)}x"))
    return out


def reference_labels(hashes: list[str], max_distance: int) -> list[int | None]:
    """Groups by comparing every pair (bits unpacked from bytes), numbered by first member."""
    width = max(len(h) for h in hashes)
    rows = np.array([list(bytes.fromhex(h.rjust(width + width % 2, "0"))) for h in hashes], dtype=np.uint8)
    parent = list(range(len(hashes)))

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    for i in range(len(hashes)):
        near = np.unpackbits(rows[i] ^ rows[i + 1 :], axis=1).sum(axis=1) <= max_distance
        for j in np.flatnonzero(near) + i + 1:
            parent[root(int(j))] = root(i)
    return numbered([root(i) for i in range(len(hashes))])


def numbered(roots: list[int]) -> list[int | None]:
    """Component roots to group labels: None for a lone member, else 0.. by first member."""
    sizes = Counter(roots)
    numbers: dict[int, int] = {}
    return [numbers.setdefault(r, len(numbers)) if sizes[r] > 1 else None for r in roots]


def labels_of(
    hashes: list[str], max_distance: int, plan: Plan, processes: int = 2, dense: bool = False
) -> list[int | None]:
    """Group labels found with a forced search plan, numbered by first member (dense: links may be far)."""
    words = parse_hex(hashes)
    bits = 4 * len(hashes[0])
    distinct, inverse = np.unique(words, axis=0, return_inverse=True)
    sets = DisjointSets(distinct.shape[0])
    for a, b in find_edges(distinct, bits, max_distance, plan=plan, processes=processes):
        assert dense or (distance(distinct[a], distinct[b]) <= max_distance).all()
        sets.union(a, b)
    return numbered(sets.compress()[inverse.reshape(-1)].tolist())


@pytest.mark.parametrize("bits", [16, 36, 64, 100, 256, 1024])
@pytest.mark.parametrize("max_distance", [0, 1, 3, 6, 10, 16])
def test_groups_match_brute_force(bits: int, max_distance: int) -> None:
    rng = np.random.default_rng(bits * 100 + max_distance)
    hashes = make_hashes(rng, 300, bits, spread=max(2, max_distance))
    assert group_ids(hashes, max_distance) == reference_labels(hashes, max_distance)


@pytest.mark.parametrize(
    ("bits", "max_distance", "blocks"),
    [(64, 6, 7), (64, 6, 9), (64, 3, 5), (64, 1, 2), (36, 4, 6), (1024, 16, 17), (1024, 2, 4), (256, 9, 10)],
)
def test_block_tables_find_every_pair(bits: int, max_distance: int, blocks: int) -> None:
    rng = np.random.default_rng(blocks)
    hashes = make_hashes(rng, 600, bits, spread=max_distance + 2)
    plan = Plan("tables", blocks=blocks, tables=math.comb(blocks, max_distance))
    assert labels_of(hashes, max_distance, plan) == reference_labels(hashes, max_distance)


def test_entropy_balanced_blocks_spread_skewed_bits_and_stay_exact() -> None:
    rng = np.random.default_rng(21)
    hashes = [
        format(int(v) & ((1 << 40) - 1) | (0xF << 60 if k % 7 == 0 else 0), "016x")
        for k, v in enumerate(rng.integers(0, 2**63, size=800))
    ]
    hashes += [
        format(int(h, 16) ^ (1 << int(b)), "016x") for h, b in zip(hashes[:200], rng.integers(0, 64, 200), strict=False)
    ]
    rows = parse_hex(hashes)
    weights = tables.unit_entropy(rows, tables.bit_units(64, 1))
    assert max(weights[:20]) < 0.7 < min(weights[24:])
    layout = tables.block_layout(64, 1, 8, weights)
    assert sorted(b for block in layout for start, length in block for b in range(start, start + length)) == list(
        range(64)
    )
    shares = [sum(weights[b] for start, length in block for b in range(start, start + length)) for block in layout]
    assert max(shares) - min(shares) < 1.0  # contiguous 8-bit blocks would range from ~0 to 8
    plan = Plan("tables", blocks=8, tables=28, layout=tuple(layout))
    assert labels_of(hashes, 6, plan) == labels_of(hashes, 6, Plan("scan")) == reference_labels(hashes, 6)


def test_tiled_scan_finds_every_pair() -> None:
    hashes = make_hashes(np.random.default_rng(7), 500, 64, spread=8)
    assert labels_of(hashes, 5, Plan("scan")) == reference_labels(hashes, 5)


def test_large_input_uses_tables_and_stays_exact() -> None:
    rng = np.random.default_rng(11)
    n = 20_000
    base = rng.integers(0, 2**64 - 1, size=n, dtype=np.uint64, endpoint=True)
    partners = rng.choice(n, size=(2000, 2), replace=False)
    for k, (i, j) in enumerate(partners):
        flips = rng.choice(64, size=1 + k % 6, replace=False)
        base[j] = base[i] ^ np.uint64(sum(1 << int(f) for f in flips))
    hashes = [format(int(v), "016x") for v in base]
    assert plan_search(n, 64, 1, 6).method == "tables"
    groups = find_groups(hashes, 6)
    assert groups.ids() == labels_of(hashes, 6, Plan("scan"))  # the scan is checked on brute force above
    assert all(groups.labels[i] == groups.labels[j] >= 0 for i, j in partners)


@pytest.mark.parametrize("blocks", [8, 9])
def test_one_process_and_forked_processes_agree(monkeypatch: pytest.MonkeyPatch, blocks: int) -> None:
    monkeypatch.setattr(search, "PARALLEL_MIN", 0)  # fork even for a small input
    forks = []
    real_fork = parallel._fork
    monkeypatch.setattr(parallel, "_fork", lambda task, share: forks.append(len(share)) or real_fork(task, share))
    hashes = make_hashes(np.random.default_rng(3), 2000, 64, spread=7)
    hashes += hashes[:50] + [format(int(h, 16) ^ 0x3F, "016x") for h in hashes[:80]]  # identical, and at distance 6
    plan = Plan("tables", blocks=blocks, tables=math.comb(blocks, 6))
    one = labels_of(hashes, 6, plan, processes=1, dense=True)
    assert not forks
    assert labels_of(hashes, 6, plan, processes=2, dense=True) == one == reference_labels(hashes, 6)
    assert forks == [math.comb(blocks, 6) // 2]
    forks.clear()
    assert labels_of(hashes, 6, plan, processes=3, dense=True) == one
    assert len(forks) == 2
    assert any(label is not None for label in one)


def test_a_failed_child_share_is_done_by_the_parent(caplog: pytest.LogCaptureFixture) -> None:
    parent = os.getpid()

    def task(share: list[int]) -> tuple[np.ndarray, np.ndarray]:
        if os.getpid() != parent and share[0] == 1:
            os._exit(3)  # a child dying (out of memory, killed) before it answers
        return np.asarray(share, dtype=np.int64), np.asarray(share, dtype=np.int64) * 10

    results = list(parallel.map_shares(task, list(range(7)), 3))
    assert sorted(np.concatenate([a for a, _ in results]).tolist()) == list(range(7))
    assert all((b == a * 10).all() for a, b in results)
    assert "failed" in caplog.text


def test_without_fork_or_a_second_cpu_one_process_does_it_all(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    assert parallel.default_processes() == 1
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)))
    assert parallel.default_processes() == parallel.MAX_DEFAULT_PROCESSES == 2
    monkeypatch.delattr(os, "fork")
    shares = list(parallel.map_shares(lambda share: (np.asarray(share), np.asarray(share)), [1, 2, 3], 2))
    assert len(shares) == 1 and shares[0][0].tolist() == [1, 2, 3]


def test_dense_buckets_stay_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(17)
    base = int.from_bytes(rng.bytes(8), "big") & ~0xFFF
    hashes = [format(base | int(v), "016x") for v in rng.choice(4096, size=1500, replace=False)]
    reductions = []
    monkeypatch.setattr(search, "reduce_edges", lambda a, b: reductions.append(a.size) or reduce_edges(a, b))
    assert labels_of(hashes, 3, Plan("tables", blocks=4, tables=4), dense=True) == labels_of(hashes, 3, Plan("scan"))
    assert reductions, "the dense path (more links than hashes in one table) was not exercised"


def test_near_pairs_lists_each_bucket_pair_once_in_chunks() -> None:
    keys = np.array([5, 5, 5, 1, 5, 2, 2, 9], dtype=np.uint64)
    words = np.array([[0], [0], [3], [0], [1], [7], [0], [0]], dtype=np.uint64)
    everything = list(near_pairs(keys, 4, words, 64, limit=2))
    pairs = [tuple(sorted(p)) for a, b in everything for p in zip(a.tolist(), b.tolist(), strict=True)]
    assert sorted(pairs) == [(0, 1), (0, 2), (0, 4), (1, 2), (1, 4), (2, 4), (5, 6)]
    assert len(everything) > 1
    close = [
        tuple(sorted(p)) for a, b in near_pairs(keys, 4, words, 1) for p in zip(a.tolist(), b.tolist(), strict=False)
    ]
    assert sorted(close) == [(0, 1), (0, 4), (1, 4), (2, 4)]


def test_planner_uses_block_tables_at_a_million() -> None:
    plan = plan_search(1_000_000, 64, 1, 6)
    assert plan.method == "tables" and plan.tables <= 100
    assert plan_search(100, 64, 1, 6).method == "scan"
    assert plan_search(10, 64, 1, 0).method == "none"


def test_chain_is_one_group_even_when_ends_are_far() -> None:
    a = 0
    b = a ^ 0b111111  # 6 bits from a
    c = b ^ (0b111111 << 6)  # 6 bits from b, 12 from a
    far = (1 << 64) - 1
    hashes = [format(v, "016x") for v in (a, far, c, b)]
    groups = find_groups(hashes, 6)
    assert groups.ids() == [0, None, 0, 0]
    ((group, members),) = list(groups.members())
    assert group == 0 and members.tolist() == [0, 2, 3]
    assert groups.max_distance(members) == 12


def test_identical_hashes_group_at_every_distance() -> None:
    hashes = ["00000000000000ff", "ffffffffffffffff", "00000000000000ff", "0f0f0f0f0f0f0f0f", "ffffffffffffffff"]
    for max_distance in (0, 3, 16):
        assert group_ids(hashes, max_distance) == [0, 1, 0, None, 1]
    groups = find_groups(hashes, 0)
    assert [groups.max_distance(m) for _, m in groups.members()] == [0, 0]


def test_groups_are_numbered_by_first_member() -> None:
    hashes = ["ff00", "0001", "0000", "ff01", "00ff"]
    assert group_ids(hashes, 1) == [0, 1, 1, 0, None]


def test_distance_at_least_the_bit_count_joins_everything() -> None:
    hashes = ["0000", "ffff", "f0f0", "0000"]
    groups = find_groups(hashes, 16)
    assert groups.plan.method == "all"
    assert groups.ids() == [0, 0, 0, 0]
    assert groups.max_distance(np.arange(4)) == 16


def test_empty_and_single_inputs() -> None:
    assert group_ids([], 6) == []
    assert group_ids(["abcd"], 6) == [None]
    assert find_groups([], 6).count == 0


def test_negative_distance_is_refused() -> None:
    with pytest.raises(ValueError, match="max_distance"):
        find_groups(["00"], -1)


def test_uint64_and_string_arrays_are_accepted() -> None:
    values = np.array([0, 1, 2**63 + 2**62, 3], dtype=np.uint64)
    assert find_groups(values, 1).ids() == [0, 0, None, 0]
    assert find_groups(np.array(["10", "11", "f0"]), 1).ids() == [0, 0, None]


def test_parse_hex_pads_to_words_and_keeps_distances() -> None:
    rng = np.random.default_rng(5)
    for digits in (1, 4, 9, 16, 17, 25, 256):
        values = [int.from_bytes(rng.bytes(digits), "big") % (16**digits) for _ in range(20)]
        words = parse_hex([format(v, f"0{digits}x") for v in values])
        assert words.shape == (20, max(1, math.ceil(digits / 16)))
        got = distance(words[:, None, :], words[None, :, :])
        want = [[(x ^ y).bit_count() for y in values] for x in values]
        assert got.tolist() == want


def test_popcount_fallback_counts_bits() -> None:
    values = np.random.default_rng(2).integers(0, 2**64 - 1, size=1000, dtype=np.uint64, endpoint=True)
    values[:3] = [0, 2**64 - 1, 2**63]
    assert popcount_swar(values).tolist() == [int(v).bit_count() for v in values.tolist()]


@pytest.mark.parametrize(
    ("hashes", "problem"),
    [
        (["abcd", "abc"], "3 hex digits, expected 4"),
        (["abcd", "abcg"], "not a hex string"),
        (["abcd", "ab d"], "not a hex string"),
        (["abcd", None], "not a string"),
        ([""], "empty hash"),
    ],
)
def test_parse_hex_names_the_bad_hash(hashes: list, problem: str) -> None:
    with pytest.raises(HashFormatError, match=problem) as caught:
        parse_hex(hashes)
    assert caught.value.index == len(hashes) - 1


def test_union_find_handles_long_chains() -> None:
    n = 200_000
    sets = DisjointSets(n)
    sets.union(np.arange(n - 1, 0, -1), np.arange(n - 2, -1, -1))  # path n-1 ~ n-2 ~ ... ~ 0
    assert (sets.compress() == 0).all()


def test_union_find_matches_a_plain_one() -> None:
    rng = np.random.default_rng(9)
    n = 3000
    edges = rng.integers(0, n, size=(2500, 2))
    plain = list(range(n))

    def root(i: int) -> int:
        while plain[i] != i:
            i = plain[i]
        return i

    for a, b in edges:
        plain[root(int(a))] = root(int(b))
    sets = DisjointSets(n)
    for part in np.array_split(edges, 7):
        sets.union(part[:, 0], part[:, 1])
    roots = sets.compress()
    want = [root(i) for i in range(n)]
    assert all((roots[i] == roots[j]) == (want[i] == want[j]) for i, j in rng.integers(0, n, size=(20000, 2)))
    a, b = reduce_edges(edges[:, 0], edges[:, 1])
    again = DisjointSets(n)
    again.union(a, b)
    assert (again.compress() == roots).all()
    assert a.size < np.unique(edges).size


def test_max_distance_is_exact_up_to_the_limit_and_a_bound_above(monkeypatch: pytest.MonkeyPatch) -> None:
    hashes = make_hashes(np.random.default_rng(13), 400, 64, spread=6)
    rows = np.unique(parse_hex(hashes), axis=0)
    exact = int(distance(rows[:, None, :], rows[None, :, :]).max())
    assert grouping.diameter(rows) == exact
    monkeypatch.setattr(grouping, "EXACT_DIAMETER_LIMIT", 10)
    bound = grouping.diameter(rows)
    assert 0 < bound <= exact


def test_group_records_ignores_unhashed_and_maps_positions() -> None:
    records = [
        {"path": "a.jpg", "hash": "ff00", "status": "ok"},
        {"path": "bad.jpg", "hash": None, "status": "failed", "reason": "decode: truncated"},
        None,
        {"path": "b.jpg", "hash": "ff01", "status": "ok"},
        {"path": "skip.txt", "hash": "ff00", "status": "skipped", "reason": "not-image: text"},
        ("c.jpg", "0f0f"),
        {"path": "d.jpg", "hash": "0f0f"},
        {"path": "lone.jpg", "hash": "a5a5", "status": "ok"},
    ]
    result = group_records(iter(records), 2)
    assert [result.group_of(i) for i in range(len(records))] == [0, None, None, 0, None, 1, 1, None]
    assert (result.duplicate_groups, result.duplicate_files) == (2, 4)
    assert result.positions.tolist() == [0, 3, 5, 6, 7]
    assert result.group_of_path("d.jpg") == 1 and result.group_of_path("lone.jpg") is None
    assert list(result.summaries()) == [
        {"group": 0, "size": 2, "max_distance": 1, "paths": ["a.jpg", "b.jpg"]},
        {"group": 1, "size": 2, "max_distance": 0, "paths": ["c.jpg", "d.jpg"]},
    ]


def test_group_records_without_paths_still_counts() -> None:
    records = ({"path": f"{i}.jpg", "hash": format(i // 2, "016x"), "status": "ok"} for i in range(200_001))
    result = group_records(records, 0, keep_paths=False)
    assert (result.duplicate_groups, result.duplicate_files) == (100_000, 200_000)
    assert result.group_of(200_000) is None and result.group_of(199_999) == 99_999
    with pytest.raises(ValueError, match="keep_paths"):
        next(result.summaries())


def test_group_records_widens_positions_past_int32(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(streaming, "_INT32_MAX", 3)  # as if the stream were past 2^31 - 1 records
    records = [None, ("a", "00ff"), ("b", "00fe"), None, None, ("c", "ff00"), ("d", "00ff"), ("e", "ff01")]
    result = group_records(records, 1)
    assert result.positions.dtype == np.int64 and result.positions.tolist() == [1, 2, 5, 6, 7]
    assert [result.group_of(k) for k in range(8)] == [None, 0, 0, None, None, 1, 0, 1]
    with pytest.raises(RecordError, match="record #6"):
        group_records([*records[:6], ("d", "zz"), ("e", "ff01")], 1)


def test_unique_rows_matches_numpy_unique() -> None:
    rng = np.random.default_rng(9)
    for width in (1, 2):
        words = rng.integers(0, 50, size=(5000, width)).astype(np.uint64) << np.uint64(60)
        distinct, inverse = grouping.unique_rows(words)
        expected, expected_inverse = np.unique(words, axis=0, return_inverse=True)
        assert np.array_equal(distinct, expected) and np.array_equal(inverse, expected_inverse.reshape(-1))
        assert inverse.dtype == np.int32
    empty, none = grouping.unique_rows(np.zeros((0, 1), dtype=np.uint64))
    assert empty.shape == (0, 1) and none.size == 0


@pytest.mark.parametrize(
    ("hashes", "position", "problem"),
    [
        (["abcd", "abcd", "xyz!"], 2, "hash 'xyz!': not a hex string"),
        (["abcd", "abcdef"], 1, "6 hex digits, expected 4"),
        ([7], 0, "not a string"),
    ],
)
def test_group_records_names_the_bad_record(hashes: list, position: int, problem: str) -> None:
    records = [{"path": f"p{i}", "hash": h, "status": "ok"} for i, h in enumerate(hashes)]
    with pytest.raises(RecordError) as caught:
        group_records(records, 3)
    assert (caught.value.position, caught.value.path) == (position, f"p{position}")
    assert problem in caught.value.problem


def test_group_records_finds_a_bad_hash_past_the_first_chunk() -> None:
    records = [{"path": "failed", "hash": None, "status": "failed"}]
    records += [{"path": f"{i}.jpg", "hash": format(i, "08x"), "status": "ok"} for i in range(70_000)]
    records[65_540]["hash"] = "0000000g"
    with pytest.raises(RecordError) as caught:
        group_records(records, 2)
    assert (caught.value.position, caught.value.path) == (65_540, "65539.jpg")


def test_path_table_round_trips_any_text() -> None:
    table = PathTable()
    paths = ["a.jpg", "", "фото/снимок.png", "emoji-🙂.webp", "odd-\udcff.jpg"]
    for path in paths:
        table.append(path)
    assert len(table) == len(paths)
    assert [table[i] for i in range(len(paths))] == paths
