"""A lister in the test's own process, for engine tests that have no worker: what a `list_source` message does."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from contextlib import suppress

from phashfleet.files.listing import SourceError
from phashfleet.job.lister import ListingReader, ListPlan, chunk_path, list_shard, segment, shard_dir
from phashfleet.state import result_store
from phashfleet.state.store import JobStore


def inline_lister(store: JobStore, roots: Sequence[str]) -> Callable[[str, int, ListPlan, float], None]:
    """A `send_list` that lists the shard at once into the session's result store (errors kept, as a worker does).

    It does not wait a retry's delay: the engine's own delay between its ticks is what the tests check.
    """
    results = result_store.from_env()

    def send_list(job_id: str, shard: int, plan: ListPlan, delay: float) -> None:
        with suppress(SourceError):
            list_shard(store, results, job_id, shard, plan, allowed_roots=roots)

    return send_list


def leased_files(store: JobStore, job_id: str, batch_id: int) -> list[str]:
    """Take a batch as a worker does (an endless lease) and return its files, read from the listing's chunks."""
    segments = store.start_batch(job_id, batch_id, 1e18)
    assert segments is not None, f"batch {batch_id} of {job_id} is not in flight"
    return ListingReader(result_store.from_env()).files(job_id, store.snapshot(job_id).epoch, segments)


def hand_out_files(
    store: JobStore, job_id: str, batch_id: int, files: list[str], now: float, *, listing_done: bool
) -> bool:
    """Hand out a batch of exactly these files, as the operator would once workers had listed them: the
    files become one chunk of the job's listing in the session's result store, the batch one segment of it."""
    results = result_store.from_env()
    epoch = store.snapshot(job_id).epoch
    shard, token = batch_id, "test"
    results.put(
        chunk_path(shard_dir(job_id, epoch, shard, token), 0), "".join(json.dumps(f) + "\n" for f in files).encode()
    )
    return store.hand_out(
        job_id, batch_id, [segment(shard, token, 0, 0, len(files))], now, listing_done, count=len(files)
    )
