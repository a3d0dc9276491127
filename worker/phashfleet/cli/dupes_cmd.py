"""`phashfleet dupes`: group near-duplicates from a JSONL file of result records."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from typing import IO, Any

import click

from phashfleet.cli.options import log_options
from phashfleet.dupes import DEFAULT_DISTANCE, MAX_DISTANCE, RecordError, RecordGroups, group_records
from phashfleet.results import dumps


class InputError(click.ClickException):
    """Bad input: exit status 2, like a usage error."""

    exit_code = 2


def read_records(stream: IO[str], name: str) -> Iterator[dict[str, Any] | None]:
    """Yield one record per line (None for a blank line), failing with the line number on bad JSON."""
    for number, line in enumerate(stream, start=1):
        if not line.strip():
            yield None
            continue
        try:
            record = json.loads(line)
        except ValueError as error:
            raise InputError(f"{name}:{number}: not valid JSON ({error})") from None
        if not isinstance(record, dict):
            raise InputError(f"{name}:{number}: not a JSON object (a result record)")
        yield record


def write_groups(stream: IO[str], result: RecordGroups, target: str) -> None:
    """Write every record of ``stream`` to ``target`` with "group" filled in, replacing it atomically."""
    directory, name = os.path.split(os.path.abspath(target))
    temporary = os.path.join(directory, f".{name}.{uuid.uuid4().hex}.tmp")  # same folder: rename is atomic
    try:
        with open(temporary, "x", encoding="utf-8") as handle:
            for position, line in enumerate(stream):
                if line.strip():
                    record = json.loads(line)
                    record["group"] = result.group_of(position)
                    handle.write(dumps(record) + "\n")
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


@contextlib.contextmanager
def open_rereadable(path: str, *, spool: bool) -> Iterator[IO[str]]:
    """Open a file, or stdin ('-'); with ``spool``, stdin is first copied to a temporary file to allow a re-read."""
    with click.open_file(path, encoding="utf-8") as source:
        if path != "-" or not spool:
            yield source
            return
        with tempfile.TemporaryFile("w+", encoding="utf-8") as copy:
            shutil.copyfileobj(source, copy)
            copy.seek(0)
            yield copy


@click.command("dupes")
@click.argument("results", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.option(
    "--max-distance",
    "-d",
    type=click.IntRange(0, MAX_DISTANCE),
    default=DEFAULT_DISTANCE,
    show_default=True,
    help="Largest Hamming distance between two near-duplicates.",
)
@click.option(
    "--write-groups",
    "output",
    type=click.Path(dir_okay=False, writable=True),
    help="Also write the records to this JSONL file with their 'group' filled in.",
)
@log_options
def cli(results: str, max_distance: int, output: str | None) -> None:
    """Group near-duplicates in RESULTS (JSONL result records, '-' for stdin).

    Prints one JSON line per group: {"group", "size", "max_distance", "paths"}. Groups are the
    connected components of "distance <= N", numbered from 0 by their first record; records that
    are not "ok" are ignored. max_distance is exact for groups of up to 1024 distinct hashes and a
    lower bound (farthest-point sweeps) above that.
    """
    name = "<stdin>" if results == "-" else results
    if output is not None and not os.path.isdir(os.path.dirname(os.path.abspath(output))):
        raise InputError(f"--write-groups {output}: its folder does not exist")
    try:
        with open_rereadable(results, spool=output is not None) as stream:
            try:
                result = group_records(read_records(stream, name), max_distance)
            except RecordError as error:
                raise InputError(f"{name}:{error.position + 1}: path {error.path!r}: {error.problem}") from None
            for summary in result.summaries():
                click.echo(dumps(summary))
            if output is not None:
                stream.seek(0)
                write_groups(stream, result, output)
    except UnicodeDecodeError as error:
        raise InputError(f"{name}: not UTF-8 text ({error.reason})") from None
    click.echo(
        f"near-duplicate groups: {result.duplicate_groups}, files in them: {result.duplicate_files} "
        f"(max distance {max_distance})",
        err=True,
    )
