"""`phashfleet results NAMESPACE/NAME`: stream a job's records from the result store, as JSON lines."""

from __future__ import annotations

import sys

import click

from phashfleet.cli.options import log_options
from phashfleet.results import dumps
from phashfleet.state import result_store
from phashfleet.state.result_store import ResultStore


def newest_job(store: ResultStore, namespace: str, name: str) -> str | None:
    """The id of the newest job of NAMESPACE/NAME with results here: one still running, else the latest to end."""
    prefix = f"{namespace}.{name}."
    ids = [j for j in store.job_ids() if j.startswith(prefix) and "." not in j[len(prefix) :]]
    if not ids:
        return None
    return max(ids, key=lambda j: (store.expires_at(j) or float("inf"), j))


@click.command("results")
@click.argument("job")
@click.option(
    "--store",
    "root",
    default=None,
    help="The result store (a folder, file:// or s3:// URL); default: PHASHFLEET_RESULT_STORE, else the user's cache.",
)
@log_options
def cli(job: str, root: str | None) -> None:
    """Print every record of JOB (NAMESPACE/NAME; `local/NAME` for `phashfleet run`) as one JSON line each.

    In a cluster, run it in a worker pod, which has the result store:
    kubectl exec deploy/<release>-phash-fleet-worker -- phashfleet results NAMESPACE/NAME
    """
    namespace, slash, name = job.partition("/")
    if not slash or not namespace or not name:
        raise click.UsageError(f"JOB must be NAMESPACE/NAME, got {job!r}")
    store = ResultStore(root) if root else result_store.from_env()
    job_id = newest_job(store, namespace, name)
    if job_id is None:
        raise click.ClickException(f"no results of {job} in the result store {store.url}")
    epochs = store.epochs(job_id)
    if not epochs:
        raise click.ClickException(f"job {job_id} has no records in {store.url}")
    epoch = max(epochs, key=lambda e: len(store.part_ids(job_id, e)))  # only one once the job is collected
    if store.expires_at(job_id) is None:
        click.echo(f"job {job_id} has not ended: these are the records of its batches done so far", err=True)
    out = sys.stdout
    for record in store.iter_records(job_id, epoch):
        out.write(dumps(record) + "\n")
