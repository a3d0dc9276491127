"""Group result records as they stream by, keeping only compact arrays (hash words, path bytes)."""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from phashfleet.dupes.bits import HashFormatError, parse_hex
from phashfleet.dupes.components import index_dtype
from phashfleet.dupes.grouping import Groups, find_groups

_CHUNK = 1 << 16  # hex strings parsed at a time
_INT32_MAX = 2**31 - 1


class RecordError(ValueError):
    """A record cannot be grouped (bad hash, or a hash length unlike the others)."""

    def __init__(self, position: int, path: object, problem: str) -> None:
        super().__init__(f"record #{position} ({path!r}): {problem}")
        self.position = position
        self.path = path
        self.problem = problem


class PathTable:
    """Append-only list of strings stored as UTF-8 bytes plus offsets (no object per path)."""

    def __init__(self) -> None:
        self._data = bytearray()
        self._ends = array("q")

    def append(self, path: str) -> None:
        """Add a path at the next index."""
        self._data += path.encode("utf-8", "surrogatepass")
        self._ends.append(len(self._data))

    def __len__(self) -> int:
        return len(self._ends)

    def __getitem__(self, index: int) -> str:
        start = self._ends[index - 1] if index > 0 else 0
        return self._data[start : self._ends[index]].decode("utf-8", "surrogatepass")


@dataclass
class RecordGroups:
    """Near-duplicate groups of a record stream; positions count every record read, 0-based."""

    #: Group id per record position, -1 for no group (and for ignored records).
    labels: np.ndarray
    #: Groups over the hashed records only (``positions`` maps them back).
    groups: Groups
    #: Record position of each hashed record.
    positions: np.ndarray
    paths: PathTable | None = None
    _by_path: dict[str, int] | None = field(default=None, repr=False)

    @property
    def duplicate_groups(self) -> int:
        """Number of near-duplicate groups."""
        return self.groups.count

    @property
    def duplicate_files(self) -> int:
        """Number of records that belong to a group."""
        return self.groups.duplicate_files

    def group_of(self, position: int) -> int | None:
        """Group id of the record at ``position`` in the stream, None if it has none."""
        group = int(self.labels[position])
        return None if group < 0 else group

    def group_of_path(self, path: str) -> int | None:
        """Group id of the record with this path (for a second pass in another order)."""
        if self.paths is None:
            raise ValueError("paths were not kept (keep_paths=False)")
        if self._by_path is None:
            self._by_path = {
                self.paths[int(row)]: int(self.groups.labels[row]) for row in np.flatnonzero(self.groups.labels >= 0)
            }
        return self._by_path.get(path)

    def summaries(self) -> Iterator[dict[str, Any]]:
        """Yield ``{"group", "size", "max_distance", "paths"}`` per group, by group id."""
        if self.paths is None:
            raise ValueError("paths were not kept (keep_paths=False)")
        for group, rows in self.groups.members():
            yield {
                "group": group,
                "size": int(rows.size),
                "max_distance": self.groups.max_distance(rows),
                "paths": [self.paths[int(row)] for row in rows],
            }


def _hashed(record: Mapping[str, Any] | tuple[str, str] | None) -> tuple[Any, Any] | None:
    """``(path, hash)`` of a record to group, None for one to ignore (None, not ok, or no hash)."""
    if record is None:
        return None
    if isinstance(record, tuple | list):
        path, hash_hex = record
        return None if hash_hex is None else (path, hash_hex)
    if record.get("status", "ok") != "ok" or record.get("hash") is None:
        return None
    return record.get("path"), record["hash"]


def group_records(
    records: Iterable[Mapping[str, Any] | tuple[str, str] | None],
    max_distance: int,
    *,
    keep_paths: bool = True,
    processes: int | None = None,
) -> RecordGroups:
    """Group records (result dicts or ``(path, hash)`` pairs) streamed once.

    Records whose status is not "ok" (a missing status counts as ok), with no hash, or None (a
    placeholder such as a blank line) take a position but are ignored. Memory is one row of 64-bit
    words per hashed record, plus its path's bytes if ``keep_paths``.
    """
    paths = PathTable() if keep_paths else None
    positions = array("i")  # record positions of hashed records; widened to "q" past 2^31 - 1
    parsed: list[np.ndarray] = []
    pending: list[str] = []
    pending_paths: list[Any] = []
    pending_positions: list[int] = []
    hex_len: int | None = None

    def flush() -> None:
        nonlocal positions, hex_len
        if hex_len is None:
            hex_len = len(pending[0]) if isinstance(pending[0], str) else 0
        if pending_positions[-1] > _INT32_MAX and positions.typecode == "i":
            positions = array("q", positions)
        first = len(positions)  # row of pending[0] among hashed records
        positions.extend(pending_positions)
        try:
            parsed.append(parse_hex(pending, hex_len, first_index=first))
        except HashFormatError as error:
            problem = f"hash {error.value!r}: {error.problem}"
            raise RecordError(positions[error.index], pending_paths[error.index - first], problem) from None
        pending.clear()
        pending_paths.clear()
        pending_positions.clear()

    position = -1
    for position, record in enumerate(records):
        if type(record) is dict:  # the usual record, read without a call per record
            hash_hex = record.get("hash")
            if hash_hex is None or record.get("status", "ok") != "ok":
                continue
            path = record.get("path")
        else:
            found = _hashed(record)
            if found is None:
                continue
            path, hash_hex = found
        pending.append(hash_hex)
        pending_paths.append(path)
        pending_positions.append(position)
        if paths is not None:
            paths.append(str(path))
        if len(pending) >= _CHUNK:
            flush()
    if pending:
        flush()
    total = position + 1
    rows = np.concatenate(parsed) if parsed else np.zeros((0, 1), dtype=np.uint64)
    parsed.clear()
    groups = find_groups(rows, max_distance, bits=4 * (hex_len or 16), processes=processes)
    del rows
    where = np.frombuffer(positions, dtype=f"i{positions.itemsize}") if positions else np.zeros(0, dtype=np.int64)
    labels = np.full(total, -1, dtype=index_dtype(total))
    labels[where] = groups.labels
    return RecordGroups(labels=labels, groups=groups, positions=where, paths=paths)
