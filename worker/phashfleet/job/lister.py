"""Listing a job's source on the data plane: shards listed by workers into chunks in the result store.

The operator never lists a source. It sends one `list_source` message for shard 0; that lister lists the
top folder, writes how the rest splits (runs of top-level subfolders, at most MAX_SHARDS shards in all,
so several workers list a large prefix in parallel) and the files list plus the top folder's own files
as shard 0. The operator then sends one message per further shard. Each lister streams its shard into
chunk files of `chunk` references and reports only the count; the first report of a shard wins, and
every listing attempt writes under a token of its own, so the counts always match the chunks read.

    jobs/<job id>/<epoch>/listing/<shard 5 digits>-<token>/<chunk 9 digits>.jsonl   one JSON string a line
    jobs/<job id>/<epoch>/listing/00000-<token>/split.json                          shard 0's split

Once every shard is in, the job's total is known and positions 0..total-1 run through the shards in
order (`ListingMap`): a batch is a few segments `shard:token:chunk:start:end`, which a worker reads back
(`ListingReader`). Shards in order yield exactly what `files.listing.iter_source` yields.
"""

from __future__ import annotations

import bisect
import json
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from phashfleet.files.listing import (
    SourceError,
    SourceNetworkError,
    SourceOutsideRootsError,
    iter_shard,
    split_source,
)
from phashfleet.job.hold import kept
from phashfleet.job.spec import JobSpec
from phashfleet.job.status import WORKER_SETTINGS
from phashfleet.state.result_store import ResultStore
from phashfleet.state.store import JobStore, ListingState

log = logging.getLogger("phashfleet.lister")

#: Shards a source is cut into at most: enough to keep a large fleet listing, few enough that the
#: listing's state in Redis stays a few hundred bytes whatever the source's size.
MAX_SHARDS = 32
#: Seconds a lister's hold on a shard lasts; renewed a third of the way through while it lists.
LIST_LEASE = 60.0
#: References a chunk holds at least (a batch of a tiny batchSize still reads one modest file).
CHUNK_MIN = 256


def chunk_size(batch_size: int) -> int:
    """References per listing chunk for a job of `batch_size`: a batch then reads one or two chunks."""
    return max(CHUNK_MIN, int(batch_size))


@dataclass(frozen=True)
class ListPlan:
    """What a lister needs, from the spec (sent in the message: the lister reads no PhashJob)."""

    source: dict[str, Any]
    chunk: int

    def to_message(self) -> dict[str, Any]:
        """The plan as a message argument."""
        return asdict(self)

    @classmethod
    def from_message(cls, raw: dict[str, Any]) -> ListPlan:
        """The plan a message carries."""
        return cls(**raw)

    @classmethod
    def of(cls, spec: JobSpec) -> ListPlan:
        """The plan for a job's spec: its source, in chunks sized for its batches."""
        return cls(dict(spec.source), chunk_size(spec.batch_size))


def shard_dir(job_id: str, epoch: str, shard: int, token: str) -> tuple[str, ...]:
    """The result-store folder of one listing attempt (`token`) of a shard."""
    return ("jobs", job_id, epoch, "listing", f"{shard:05d}-{token}")


def chunk_path(folder: tuple[str, ...], number: int) -> tuple[str, ...]:
    """Where chunk `number` of a listing attempt's folder lives in the result store."""
    return (*folder, f"{number:09d}.jsonl")


def segment(shard: int, token: str, number: int, start: int, end: int) -> str:
    """A batch's reference to lines start..end-1 of one chunk (what `ListingReader.files` reads back)."""
    return f"{shard}:{token}:{number}:{start}:{end}"


def _source_error(exc: SourceError) -> dict[str, Any]:
    """What the operator is told: the reason, and a message that names the worker's setting when that is the cause."""
    transient = isinstance(exc, SourceNetworkError)
    message = str(exc)
    if isinstance(exc, SourceOutsideRootsError):
        message += f"; {WORKER_SETTINGS['outside_roots']}"
    return {"reason": exc.reason, "message": message, "uri": exc.uri, "detail": exc.detail, "transient": transient}


@dataclass
class _Progress:
    files: int = 0


def list_shard(
    store: JobStore,
    results: ResultStore,
    job_id: str,
    shard: int,
    plan: ListPlan,
    *,
    allowed_roots: Sequence[str] | None,
) -> str:
    """List one shard of a job's source into the result store and report its count; return what happened.

    Raises the SourceError that stopped it, after keeping it in the store for the operator.
    """
    if not store.start_listing(job_id, shard, time.time() + LIST_LEASE):
        return "dropped: the shard is listed, or the job has no state"
    snap = store.snapshot(job_id)
    token = uuid.uuid4().hex[:8]
    progress = _Progress()
    folder = shard_dir(job_id, snap.epoch, shard, token)
    try:
        with kept(lambda: store.start_listing(job_id, shard, time.time() + LIST_LEASE, progress.files), LIST_LEASE / 3):
            shards: int | None = None
            if shard == 0:
                refs, split = split_source(plan.source, allowed_roots, max_shards=MAX_SHARDS)
                results.put((*folder, "split.json"), json.dumps([list(g) for g in split.groups]).encode())
                shards = 1 + len(split.groups)
            else:
                root = store.listing(job_id).root
                groups = json.loads(results.get((*shard_dir(job_id, snap.epoch, 0, root), "split.json")))
                refs = iter_shard(plan.source, groups[shard - 1], allowed_roots)
            files = write_chunks(results, folder, refs, plan.chunk, progress)
    except SourceError as exc:
        store.listing_failed(job_id, shard, _source_error(exc))
        raise
    kept_now = store.finish_listing(job_id, shard, files, token, shards=shards)
    if kept_now != 1:
        return "dropped: another lister reported the shard first" if kept_now == 0 else "dropped: the job state went"
    return f"listed shard {shard}: {files} files" + (f", {shards} shards in all" if shards is not None else "")


def write_chunks(
    results: ResultStore, folder: tuple[str, ...], refs: Iterable[str], chunk: int, progress: _Progress
) -> int:
    """Write `refs` as numbered chunk files of `chunk` lines under `folder`; return how many there were."""
    lines: list[str] = []

    def flush() -> None:
        results.put(chunk_path(folder, progress.files // chunk), "".join(lines).encode())
        progress.files += len(lines)
        lines.clear()

    for ref in refs:
        lines.append(json.dumps(ref) + "\n")
        if len(lines) == chunk:
            flush()
    if lines:
        flush()
    return progress.files


def list_here(
    store: JobStore, results: ResultStore, job_id: str, plan: ListPlan, *, allowed_roots: Sequence[str] | None
) -> int:
    """List every shard of a job in this process, one after the other (`phashfleet run`); return the total."""
    list_shard(store, results, job_id, 0, plan, allowed_roots=allowed_roots)
    state = store.listing(job_id)
    for shard in range(1, state.shards or 1):
        list_shard(store, results, job_id, shard, plan, allowed_roots=allowed_roots)
    return store.snapshot(job_id).total


def list_job_here(
    store: JobStore, results: ResultStore, job_id: str, spec: JobSpec, allowed_roots: Sequence[str] | None
) -> ListingMap:
    """List a job's source in this process, as its workers would (`phashfleet run`); return its map."""
    plan = ListPlan.of(spec)
    list_here(store, results, job_id, plan, allowed_roots=allowed_roots)
    return ListingMap.of(store.listing(job_id), plan.chunk)


@dataclass
class ListingMap:
    """Listing positions over the listed shards, in order: `take` turns a range into segments of chunks."""

    shards: list[tuple[int, str]]
    chunk: int
    starts: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        position = 0
        for files, _ in self.shards:
            self.starts.append(position)
            position += files

    @classmethod
    def of(cls, state: ListingState, chunk: int) -> ListingMap:
        """The map of a complete listing."""
        return cls([state.listed[s] for s in range(state.shards or 0)], chunk)

    @property
    def total(self) -> int:
        """Files in all shards."""
        return (self.starts[-1] + self.shards[-1][0]) if self.shards else 0

    def take(self, start: int, count: int) -> tuple[list[str], int]:
        """Segments naming positions start..start+count-1 (fewer at the end), and how many files they name."""
        end = min(self.total, start + count)
        segments: list[str] = []
        position = start
        while position < end:
            shard = bisect.bisect_right(self.starts, position) - 1
            files, token = self.shards[shard]
            offset = position - self.starts[shard]
            number, line = divmod(offset, self.chunk)
            upto = min(self.chunk, line + (end - position), files - number * self.chunk)
            segments.append(segment(shard, token, number, line, upto))
            position += upto - line
        return segments, end - start if end > start else 0


class ListingReader:
    """Reads a batch's segments back as file references, keeping the last few chunks it read."""

    def __init__(self, results: ResultStore, keep: int = 4) -> None:
        self.results = results
        self.keep = keep
        self._chunks: OrderedDict[tuple[str, ...], list[str]] = OrderedDict()

    def files(self, job_id: str, epoch: str, segments: Iterable[str]) -> list[str]:
        """The file references `segments` name, in order."""
        out: list[str] = []
        for segment in segments:
            shard, token, number, start, end = segment.split(":")
            path = chunk_path(shard_dir(job_id, epoch, int(shard), token), int(number))
            out.extend(self._chunk(path)[int(start) : int(end)])
        return out

    def _chunk(self, path: tuple[str, ...]) -> list[str]:
        if path in self._chunks:
            self._chunks.move_to_end(path)
            return self._chunks[path]
        refs = [json.loads(line) for line in self.results.get(path).decode().splitlines() if line]
        self._chunks[path] = refs
        while len(self._chunks) > self.keep:
            self._chunks.popitem(last=False)
        return refs


def iter_listing(results: ResultStore, job_id: str, epoch: str, mapping: ListingMap) -> Iterator[str]:
    """Every listed reference of a job, in position order (for tests and tools)."""
    reader = ListingReader(results)
    for start in range(0, mapping.total, mapping.chunk):
        yield from reader.files(job_id, epoch, mapping.take(start, mapping.chunk)[0])
