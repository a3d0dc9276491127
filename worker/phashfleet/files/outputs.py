"""Write result records to an output file (jsonl, csv, parquet) streaming and atomically.

Records are consumed one by one (parquet: one row group of ROW_GROUP_SIZE at a time) into a
temporary file beside the target, which replaces the target only once everything is written:
a reader sees the old file or the whole new one, never half of one. Local targets are renamed
(`os.replace`); object-store targets are written under a temporary key, then moved.
"""

from __future__ import annotations

import csv
import io
import json
import os
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import suppress
from types import ModuleType
from typing import IO, TYPE_CHECKING, Any, cast

from phashfleet.files.access import OutsideRootsError, confine, is_local, local_path
from phashfleet.files.schemes import is_http
from phashfleet.job.spec import spec_default, spec_enum
from phashfleet.results import FIELDS, dumps

if TYPE_CHECKING:  # the optional parquet extra, imported when a parquet output is asked for
    import pyarrow
    import pyarrow.parquet

#: Columns of csv and parquet outputs.
COLUMNS = (*FIELDS, "group")
#: The CRD's spec.output.format enum, each with a writer and a reader below.
FORMATS: tuple[str, ...] = spec_enum("output.format")
#: A PhashJob's spec.output.format when it names none.
DEFAULT_FORMAT: str = spec_default("output.format")
#: Rows per parquet row group: the most records held in memory at once.
ROW_GROUP_SIZE = 10_000
_INT_COLUMNS = ("hash_size", "bytes", "width", "height", "group")


class OutputError(Exception):
    """An output cannot be written (or read) as asked."""


class OutputFormatError(OutputError, ValueError):
    """An unknown format, or one whose optional extra is not installed."""


class OutputOutsideRootsError(OutputError, OutsideRootsError):
    """A local output uri lies outside every allowed output root."""


def write_records(
    records: Iterable[Mapping[str, Any]],
    uri: str,
    fmt: str = DEFAULT_FORMAT,
    allowed_roots: Sequence[str] | None = None,
    *,
    storage_options: Mapping[str, Any] | None = None,
) -> int:
    """Stream `records` to `uri` in `fmt` and return how many were written.

    Parameters:
      records(iterable): result records (dicts with records.FIELDS, optionally `group`).
      uri(str): a local path, file://, s3:// or another writable fsspec URL.
      fmt(str): jsonl | csv | parquet (parquet needs the `parquet` extra).
      allowed_roots(list[str]): when given, a local uri must lie inside one of them.
      storage_options(dict): extra fsspec options for remote targets.

    On any error (including one raised by `records`) the target is left as it was and the
    temporary file is removed.
    """
    writer = _writer(fmt)
    if is_local(uri):
        return _write_local(_confined(uri, allowed_roots), lambda f: writer(records, f))
    if is_http(uri):
        raise OutputError(f"output {uri!r}: http(s) outputs are not supported; use file:// or s3://")
    return _write_remote(uri, storage_options, lambda f: writer(records, f))


def check_target(uri: str, fmt: str = DEFAULT_FORMAT, allowed_roots: Sequence[str] | None = None) -> None:
    """Raise OutputError unless `uri` names an output this fleet may write in `fmt`: format (and its extra),
    scheme and allowed roots. Nothing is touched, so a process without the output's volume can check it."""
    _writer(fmt)
    if is_local(uri):
        _confined(uri, allowed_roots)
    elif is_http(uri):
        raise OutputError(f"output {uri!r}: http(s) outputs are not supported; use file:// or s3://")


def check_writable(
    uri: str,
    fmt: str = DEFAULT_FORMAT,
    allowed_roots: Sequence[str] | None = None,
    *,
    storage_options: Mapping[str, Any] | None = None,
) -> None:
    """Raise OutputError unless `uri` could be written in `fmt` now; leaves no trace behind.

    `check_target`, then a real write of an empty temporary file beside the target (its folder is created as
    the write would create it): the checks `write_records` would fail on, made before a job hashes anything.
    """
    check_target(uri, fmt, allowed_roots)
    try:
        if is_local(uri):
            _write_local_probe(_confined(uri, allowed_roots))
        else:
            _write_remote_probe(uri, storage_options)
    except OutputError:
        raise
    except Exception as exc:
        raise OutputError(f"output {uri!r} is not writable: {type(exc).__name__}: {exc}") from exc


def _write_local_probe(path: str) -> None:
    folder, name = os.path.split(path)
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, _temp_name(name))
    with open(tmp, "xb"):
        pass
    os.unlink(tmp)


def _write_remote_probe(uri: str, storage_options: Mapping[str, Any] | None) -> None:
    import fsspec

    fs, path = fsspec.core.url_to_fs(uri, **dict(storage_options or {}))
    folder, _, name = path.rpartition("/")
    tmp = f"{folder}/{_temp_name(name)}" if folder else _temp_name(name)
    with fs.open(tmp, "wb") as f:
        f.write(b"")
    fs.rm(tmp)


def read_records(
    uri: str, fmt: str = DEFAULT_FORMAT, *, storage_options: Mapping[str, Any] | None = None
) -> Iterator[dict[str, Any]]:
    """Yield the records of an output file one by one (csv/parquet give COLUMNS, typed back)."""
    reader = {"jsonl": _read_jsonl, "csv": _read_csv, "parquet": _read_parquet}.get(fmt)
    if reader is None:
        raise OutputFormatError(f"unknown output format {fmt!r}; use one of {', '.join(FORMATS)}")
    if is_local(uri):
        with open(local_path(uri), "rb") as f:
            yield from reader(f)
        return
    import fsspec

    with fsspec.open(uri, "rb", **dict(storage_options or {})) as f:
        yield from reader(f)


# --- targets ---------------------------------------------------------------------------------


def _confined(uri: str, allowed_roots: Sequence[str] | None) -> str:
    path = os.path.abspath(local_path(uri))
    if allowed_roots is None:
        return path
    try:
        confine(path, allowed_roots)
    except OutsideRootsError:
        raise OutputOutsideRootsError(
            f"outside_roots: output {uri!r} is not under any allowed output root {list(allowed_roots)!r}"
        ) from None
    return path


def _temp_name(name: str) -> str:
    return f".{name}.{uuid.uuid4().hex[:12]}.tmp"


def _write_local(path: str, write: Callable[[IO[bytes]], int]) -> int:
    folder, name = os.path.split(path)
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, _temp_name(name))
    try:
        with open(tmp, "xb") as f:
            count = write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(folder)
    return count


def _fsync_dir(folder: str) -> None:
    # Makes the rename itself durable; some filesystems cannot open a folder, which is fine.
    with suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_remote(uri: str, storage_options: Mapping[str, Any] | None, write: Callable[[IO[bytes]], int]) -> int:
    import fsspec

    fs, path = fsspec.core.url_to_fs(uri, **dict(storage_options or {}))
    folder, _, name = path.rpartition("/")
    tmp = f"{folder}/{_temp_name(name)}" if folder else _temp_name(name)
    f = fs.open(tmp, "wb")
    try:
        count = write(f)
    except BaseException:
        with suppress(Exception):
            f.discard()  # s3fs: abort a started multipart upload rather than complete it
        with suppress(Exception):
            f.close()
        with suppress(Exception):
            fs.rm(tmp)
        raise
    try:
        f.close()
        fs.mv(tmp, path)
    except BaseException:
        with suppress(Exception):
            fs.rm(tmp)
        raise
    return count


# --- formats ---------------------------------------------------------------------------------


def _writer(fmt: str) -> Callable[[Iterable[Mapping[str, Any]], IO[bytes]], int]:
    if fmt == "jsonl":
        return _write_jsonl
    if fmt == "csv":
        return _write_csv
    if fmt == "parquet":
        _pyarrow()  # fail before a temp file exists
        return _write_parquet
    raise OutputFormatError(f"unknown output format {fmt!r}; use one of {', '.join(FORMATS)}")


def _text(f: IO[bytes]) -> io.TextIOWrapper:
    return io.TextIOWrapper(f, encoding="utf-8", newline="", write_through=False)


def _write_jsonl(records: Iterable[Mapping[str, Any]], f: IO[bytes]) -> int:
    out = _text(f)
    count = 0
    for record in records:
        out.write(dumps(dict(record)))
        out.write("\n")
        count += 1
    out.flush()
    out.detach()
    return count


def _write_csv(records: Iterable[Mapping[str, Any]], f: IO[bytes]) -> int:
    out = _text(f)
    writer = csv.DictWriter(out, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    count = 0
    for record in records:
        writer.writerow(record)
        count += 1
    out.flush()
    out.detach()
    return count


def _pyarrow() -> ModuleType:
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError as exc:
        raise OutputFormatError(
            f"parquet output needs the 'parquet' extra: pip install 'phash-fleet[parquet]' ({exc})"
        ) from exc
    return cast(ModuleType, pyarrow)  # pyarrow ships no types: the module is Any to mypy


def _schema(pa: ModuleType) -> pyarrow.Schema:
    types = {
        "hash_size": pa.int32(),
        "bytes": pa.int64(),
        "width": pa.int32(),
        "height": pa.int32(),
        "group": pa.int64(),
    }
    return pa.schema([(name, types.get(name, pa.string())) for name in COLUMNS])


def _write_parquet(records: Iterable[Mapping[str, Any]], f: IO[bytes]) -> int:
    pa = _pyarrow()
    schema = _schema(pa)
    count = 0
    with pa.parquet.ParquetWriter(f, schema) as writer:
        chunk: list[Mapping[str, Any]] = []
        for record in records:
            chunk.append(record)
            if len(chunk) == ROW_GROUP_SIZE:
                count += _write_row_group(pa, writer, schema, chunk)
                chunk = []
        if chunk:
            count += _write_row_group(pa, writer, schema, chunk)
    return count


def _write_row_group(
    pa: ModuleType, writer: pyarrow.parquet.ParquetWriter, schema: pyarrow.Schema, chunk: list[Mapping[str, Any]]
) -> int:
    columns = {name: [r.get(name) for r in chunk] for name in COLUMNS}
    writer.write_table(pa.Table.from_pydict(columns, schema=schema), row_group_size=len(chunk))
    return len(chunk)


def _read_jsonl(f: IO[bytes]) -> Iterator[dict[str, Any]]:
    for line in f:
        if line.strip():
            yield json.loads(line)


def _read_csv(f: IO[bytes]) -> Iterator[dict[str, Any]]:
    for row in csv.DictReader(io.TextIOWrapper(f, encoding="utf-8", newline="")):
        yield {
            name: (None if row.get(name, "") == "" else int(row[name]) if name in _INT_COLUMNS else row[name])
            for name in COLUMNS
        }


def _read_parquet(f: IO[bytes]) -> Iterator[dict[str, Any]]:
    pa = _pyarrow()
    for batch in pa.parquet.ParquetFile(f).iter_batches(batch_size=ROW_GROUP_SIZE):
        yield from batch.to_pylist()
