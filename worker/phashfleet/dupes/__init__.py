"""Near-duplicate grouping: connected components of "Hamming distance <= max_distance", found exactly.

Pairs are found with multi-index block tables (pigeonhole over hash blocks, then a popcount check)
or, for small inputs, a tiled all-pairs scan; components come from a vectorised union-find.
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
