"""Near-duplicate grouping: connected components of "Hamming distance <= max_distance", found exactly.

Pairs are found with multi-index block tables (pigeonhole over hash blocks, then a popcount check)
or, for small inputs, a tiled all-pairs scan; components come from a vectorised union-find.
The tables are shared out over forked processes (``processes=``, default: the CPUs, at most 2).

Scale. 10M 64-bit hashes at distance 6: 84 tables (9 blocks), ~0.4 CPU-s each, ~45 CPU-s in all;
memory per distinct hash ~8 B (sorted hashes) + 4 B (input -> distinct) + 4 B (union-find) + 8 B
per process (the table being sorted), ~500 MB peak plus the input. Every table is independent,
and inside a table every bucket (hashes with equal kept blocks) is, so the work shards exactly:
by table (what the processes here do), and within a table by the leading bits of its key (shard k
of S sorts only the hashes whose key starts with k: n/S words). Shards return only pairs within the
distance; one union-find over them (4 B per hash) gives the same groups. At 100M hashes the
planner picks 10 blocks, 210 tables (keys of 24-28 bits, 0.4-6 hashes per bucket), 4-5 CPU-s per
table (measured on 100M random hashes), ~15 CPU-min in all: e.g. S collector processes or machines each holding the 800 MB hash
array, taking every S-th table (or every table for 1/S of the key space, buffer 800/S MB), and
sending their pairs to one process that unions them (~1.2 GB: parents, inverse, labels).

Typical use::

    groups = find_groups(["8f37...", "8f36...", ...], max_distance=6)
    groups.ids()                     # [0, 0, None, ...] group id per hash, by first member
    result = group_records(records, max_distance=6)   # streamed result records
    result.duplicate_groups, result.duplicate_files, result.group_of(position)
"""

from phashfleet.dupes.bits import HashFormatError, parse_hex
from phashfleet.dupes.grouping import EXACT_DIAMETER_LIMIT, Groups, find_groups, group_ids
from phashfleet.dupes.streaming import PathTable, RecordError, RecordGroups, group_records
from phashfleet.job.spec import spec_bounds, spec_default

#: Largest ``max_distance`` a PhashJob accepts (the CRD's bound); the functions here take any value.
MAX_DISTANCE: int = spec_bounds("duplicates.maxDistance")[1]
#: A PhashJob's spec.duplicates.maxDistance when it names none.
DEFAULT_DISTANCE: int = spec_default("duplicates.maxDistance")

__all__ = [
    "EXACT_DIAMETER_LIMIT",
    "DEFAULT_DISTANCE",
    "MAX_DISTANCE",
    "Groups",
    "HashFormatError",
    "PathTable",
    "RecordError",
    "RecordGroups",
    "find_groups",
    "group_ids",
    "group_records",
    "parse_hex",
]
