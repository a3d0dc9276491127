"""`phashfleet run MANIFEST.yaml`: run a PhashJob on this machine, no cluster needed."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import click
import redis

from phashfleet.cli.options import log_options
from phashfleet.files.access import is_local, local_path
from phashfleet.job.spec import SpecError, load_manifest, parse_spec

if TYPE_CHECKING:
    from rich.progress import Progress

    from phashfleet.embedded.run import Progress as ProgressFn
    from phashfleet.embedded.run import RunResult


def default_roots(source: Mapping[str, Any]) -> tuple[str, ...]:
    """Local roots a local run may read: the source folder and the folders of listed files."""
    uri = source.get("uri")
    refs: list[str] = [uri] if uri else []
    roots = {local_path(r) for r in refs if is_local(r)}
    roots |= {os.path.dirname(os.path.abspath(local_path(f))) for f in source.get("files") or [] if is_local(f)}
    return tuple(sorted(os.path.abspath(r) for r in roots))


def _progress_bar() -> tuple[Progress, ProgressFn] | tuple[None, None]:
    """A rich progress bar on stderr when it is a terminal, else None (stdout carries only the status JSON)."""
    if not sys.stderr.isatty():
        return None, None
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(
        TextColumn("hashing"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]} files/s"),
        TimeRemainingColumn(),
        transient=True,
        console=Console(stderr=True),
    )
    task = bar.add_task("hash", total=None, rate="0.0")

    def update(done: int, total: int, rate: float) -> None:
        bar.update(task, completed=done, total=total, rate=f"{rate:.1f}")

    return bar, update


@click.command("run")
@click.argument("manifest", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--redis",
    "redis_url",
    default=None,
    help="Use this Redis (redis://...) and real worker processes "
    "instead of the embedded default; the password may be in the URL or PHASHFLEET_REDIS_PASSWORD.",
)
@click.option("--jobs", "-j", type=click.IntRange(1), default=None, help="Worker processes (default: all cores).")
@click.option(
    "--allow-root",
    "allow_roots",
    multiple=True,
    type=click.Path(file_okay=False),
    help="Extra local folder the job may read (default: the source's own folders).",
)
@log_options
def cli(manifest: str, redis_url: str | None, jobs: int | None, allow_roots: tuple[str, ...]) -> None:
    """Run MANIFEST's PhashJob here, print its final status, write its output; exit 1 if it fails."""
    from phashfleet.embedded.run import run_embedded, run_with_redis, until_reachable
    from phashfleet.files.listing import SourceError
    from phashfleet.job.status import failed_status

    try:
        doc = load_manifest(manifest)
        spec = parse_spec(doc.get("spec"))
    except SpecError as exc:
        raise click.UsageError(f"{manifest}: {exc}") from exc
    base = os.path.dirname(os.path.abspath(manifest))
    source = {**spec.source}
    if source.get("uri") and is_local(source["uri"]) and not os.path.isabs(local_path(source["uri"])):
        source["uri"] = os.path.join(base, local_path(source["uri"]))  # relative to the manifest
    output = dict(spec.output) if spec.output else None
    if output and is_local(output["uri"]) and not os.path.isabs(local_path(output["uri"])):
        output["uri"] = os.path.join(base, local_path(output["uri"]))
    spec = dataclasses.replace(spec, source=source, output=output)
    roots = default_roots(source) + tuple(os.path.abspath(r) for r in allow_roots)
    output_roots = None
    if spec.output and is_local(spec.output["uri"]):
        output_roots = (os.path.dirname(os.path.abspath(local_path(spec.output["uri"]))),)
    name = (doc.get("metadata") or {}).get("name", "job")
    job_id = f"local.{name}.{uuid.uuid4().hex[:8]}"
    bar, update = _progress_bar()
    try:
        if bar:
            bar.start()

        def run() -> RunResult:
            if redis_url:
                return run_with_redis(
                    spec, job_id, roots, redis_url, jobs=jobs, progress=update, output_roots=output_roots
                )
            return run_embedded(spec, job_id, roots, jobs=jobs, progress=update, output_roots=output_roots)

        result = until_reachable(run)
    except SourceError as exc:  # the same status the operator writes for a source it cannot list
        click.echo(json.dumps(failed_status(exc.reason, str(exc)), indent=2))
        sys.exit(1)
    except redis.RedisError as exc:
        raise click.ClickException(f"cannot use Redis at {redis_url}: {exc}") from exc
    finally:
        if bar:
            bar.stop()
    click.echo(json.dumps(result.status, indent=2, ensure_ascii=False))
    click.echo(f"every record: phashfleet results local/{name}", err=True)
    sys.exit(0 if result.ok else 1)
