"""`phashfleet hash PATH...`: hash local files and folders, one JSON record per line on stdout."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import nullcontext
from typing import TYPE_CHECKING

import click

from phashfleet.cli.options import log_options
from phashfleet.hashing import ALGORITHMS, HashPool, Settings
from phashfleet.hashing.settings import MAX_HASH_SIZE, MIN_HASH_SIZE
from phashfleet.job.spec import spec_default
from phashfleet.results import dumps

if TYPE_CHECKING:
    from rich.progress import Progress


def walk(paths: tuple[str, ...]) -> Iterator[str]:
    """Every file under the given paths, folders recursively in name order, streamed (never listed whole)."""
    for path in paths:
        if not os.path.isdir(path):
            yield path
            continue
        for folder, dirs, files in os.walk(path):
            dirs.sort()
            for name in sorted(files):
                yield os.path.join(folder, name)


def _progress(total: int) -> Progress:
    """A rich progress bar on stderr."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("hashing"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    )


@click.command("hash")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option(
    "--algorithm",
    "-a",
    type=click.Choice(ALGORITHMS),
    default=spec_default("algorithm"),
    show_default=True,
    help="Hash algorithm.",
)
@click.option(
    "--hash-size",
    "-s",
    type=click.IntRange(MIN_HASH_SIZE, MAX_HASH_SIZE),
    default=spec_default("hashSize"),
    show_default=True,
    help="Hash size (bits per side; a power of two for whash; colorhash: binbits = size*3//8).",
)
@click.option("--exact", is_flag=True, help="Bit-identical to imagehash (slower); default is the fast decode path.")
@click.option(
    "--jobs",
    "-j",
    type=click.IntRange(min=1),
    default=None,
    help="Files hashed at once, one process each  [default: all cores]",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=float(spec_default("timeoutSeconds")),
    show_default=True,
    help="Seconds allowed per file; a file over it is recorded as failed (timeout).",
)
@log_options
def cli(paths: tuple[str, ...], algorithm: str, hash_size: int, exact: bool, jobs: int | None, timeout: float) -> None:
    """Hash files and folders (recursively); print one JSON record per file.

    Unreadable, corrupt or non-image files are records too (status failed or skipped), so the
    exit status is 0 unless the command line itself is wrong (then 2).
    """
    missing = [p for p in paths if not os.path.lexists(p)]
    if missing:
        raise click.UsageError(f"no such file or folder: {', '.join(missing)}")
    try:
        settings = Settings(
            algorithm=algorithm,
            hash_size=hash_size,
            exact=exact,
            timeout_seconds=timeout,
            allowed_roots=tuple(os.path.abspath(p) for p in paths),
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    show_progress = sys.stderr.isatty()
    total = sum(1 for _ in walk(paths)) if show_progress else 0
    with HashPool(jobs or os.cpu_count() or 1) as pool, _progress(total) if show_progress else nullcontext() as bar:
        task = bar.add_task("hash", total=total) if bar else None
        for record in pool.imap(walk(paths), settings):
            click.echo(dumps(record))
            if bar and task is not None:
                bar.advance(task)
