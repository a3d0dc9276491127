"""The result store: each finished batch's records as one immutable part, outside Redis.

Layout under the root (a local folder, file://, or an fsspec URL such as s3://bucket/prefix)::

    jobs/<job id>/<epoch>/parts/<batch id, 9 digits>.jsonl   one record per line, in hashing order
    jobs/<job id>/expires                                    unix time after which the job's results go
    cache/...                                                the content cache (phashfleet.state.content_cache)

A part is written once: to a temporary name, then published under its final name only if no part
of that batch is there yet (a local hard link or an object-store existence check). The first
delivery of a batch to publish wins; a later one reads the published part back and counts that, so
Redis's counts always describe the records a reader finds. The epoch is the job state's own id in
Redis: when Redis loses a job and it starts over, its new parts never mix with the old ones.

Workers (and `phashfleet run`) write here; the collector reads it to write the output; `phashfleet
results` streams it. The operator never touches it.
"""

from __future__ import annotations

import json
import os
import posixpath
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import suppress
from typing import Any

from phashfleet.files.access import is_local, local_path
from phashfleet.results import dumps

#: Environment variable naming the result store's root.
RESULT_STORE_ENV = "PHASHFLEET_RESULT_STORE"
PART_DIGITS = 9


def default_root() -> str:
    """Where `phashfleet run` keeps results when PHASHFLEET_RESULT_STORE names no place: the user's cache."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "phashfleet", "results")


def from_env(default: str | None = None) -> ResultStore:
    """The result store PHASHFLEET_RESULT_STORE names (else `default`, else the user's cache folder)."""
    return ResultStore(os.environ.get(RESULT_STORE_ENV) or default or default_root())


class ResultStore:
    """Parts of every job under one root, written once and read in batch order."""

    def __init__(self, root: str, storage_options: Mapping[str, Any] | None = None) -> None:
        self.root = root.rstrip("/") or "/"
        self.local = is_local(root)
        #: The root as a URL another process can be given (PHASHFLEET_RESULT_STORE): absolute when local.
        self.url = root
        if self.local:
            self.root = self.url = os.path.abspath(local_path(root))
            self.fs: Any = None
        else:
            import fsspec

            self.fs, self.root = fsspec.core.url_to_fs(root, **dict(storage_options or {}))

    # --- paths ---------------------------------------------------------------------------------
    def _join(self, *parts: str) -> str:
        return os.path.join(self.root, *parts) if self.local else posixpath.join(self.root, *parts)

    def job_dir(self, job_id: str) -> str:
        """The folder of one job's results (all its epochs)."""
        return self._join("jobs", job_id)

    def parts_dir(self, job_id: str, epoch: str) -> str:
        """The folder of one epoch's parts."""
        return self._join("jobs", job_id, epoch, "parts")

    def part_path(self, job_id: str, epoch: str, batch_id: int) -> str:
        """Where batch `batch_id`'s part is published."""
        return self._join("jobs", job_id, epoch, "parts", f"{batch_id:0{PART_DIGITS}d}.jsonl")

    # --- writing -------------------------------------------------------------------------------
    def publish_part(
        self, job_id: str, epoch: str, batch_id: int, records: Iterable[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """Publish a batch's records unless a part of it is there; return the records the published part holds."""
        records = list(records)
        body = "".join(dumps(r) + "\n" for r in records).encode()
        final = self.part_path(job_id, epoch, batch_id)
        if self.local:
            published = self._publish_local(final, body)
        else:
            published = self._publish_remote(final, body)
        return records if published else self.read_part(job_id, epoch, batch_id)

    def _publish_local(self, final: str, body: bytes) -> bool:
        folder = os.path.dirname(final)
        os.makedirs(folder, exist_ok=True)
        tmp = os.path.join(folder, f".{os.path.basename(final)}.{uuid.uuid4().hex[:8]}.tmp")
        with open(tmp, "xb") as f:
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, final)  # atomic and exclusive: fails when another delivery published first
            return True
        except FileExistsError:
            return False
        finally:
            os.unlink(tmp)

    def _publish_remote(self, final: str, body: bytes) -> bool:
        # Object stores have no exclusive rename: check, then write the whole object in one PUT (atomic for
        # readers). Two deliveries finishing the same batch in the same instant may both write; the batch's
        # records are the same files, and Redis counts the batch once, from whichever delivery finishes it.
        if self.fs.exists(final):
            return False
        self.fs.pipe_file(final, body)
        return True

    def write_expiry(self, job_id: str, seconds: int, now: float | None = None) -> None:
        """Let a job's results go `seconds` from now (a sweep deletes them after that)."""
        self.put(("jobs", job_id, "expires"), str(int((now if now is not None else time.time()) + seconds)).encode())

    # --- any small object under the root (the content cache keeps its files here too) ---------------
    def put(self, parts: tuple[str, ...], body: bytes) -> None:
        """Write `body` at root/parts..., whole (readers see the old object or the new one)."""
        path = self._join(*parts)
        if self.local:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = f"{path}.{uuid.uuid4().hex[:8]}.tmp"
            with open(tmp, "wb") as f:
                f.write(body)
            os.replace(tmp, path)
        else:
            self.fs.pipe_file(path, body)

    def get(self, parts: tuple[str, ...]) -> bytes:
        """The object at root/parts... (FileNotFoundError when there is none)."""
        return self._read(self._join(*parts))

    def names(self, parts: tuple[str, ...]) -> list[str]:
        """Names in the folder root/parts..., sorted (none when it is missing), temporary files left out."""
        return [n for n in self._listdir(self._join(*parts)) if not n.endswith(".tmp")]

    def remove(self, parts: tuple[str, ...]) -> None:
        """Delete the object at root/parts... if it is there."""
        path = self._join(*parts)
        with suppress(FileNotFoundError):
            if self.local:
                os.unlink(path)
            else:
                self.fs.rm_file(path)

    # --- reading -------------------------------------------------------------------------------
    def read_part(self, job_id: str, epoch: str, batch_id: int) -> list[dict[str, Any]]:
        """The records of one published part."""
        return list(_parse(self._read(self.part_path(job_id, epoch, batch_id))))

    def _read(self, path: str) -> bytes:
        if self.local:
            with open(path, "rb") as f:
                return f.read()
        return bytes(self.fs.cat_file(path))

    def _listdir(self, path: str) -> list[str]:
        try:
            if self.local:
                return sorted(os.listdir(path))
            return sorted(posixpath.basename(p.rstrip("/")) for p in self.fs.ls(path, detail=False))
        except (FileNotFoundError, NotADirectoryError):
            return []

    def part_ids(self, job_id: str, epoch: str) -> list[int]:
        """Batch ids with a published part, ascending."""
        names = self._listdir(self.parts_dir(job_id, epoch))
        return sorted(int(n[: -len(".jsonl")]) for n in names if n.endswith(".jsonl") and not n.startswith("."))

    def iter_records(self, job_id: str, epoch: str) -> Iterator[dict[str, Any]]:
        """Every record of one epoch, part by part in batch order (one part in memory at a time)."""
        for batch_id in self.part_ids(job_id, epoch):
            yield from _parse(self._read(self.part_path(job_id, epoch, batch_id)))

    def part_bytes(self, job_id: str, epoch: str) -> int:
        """Bytes of an epoch's parts together."""
        folder = self.parts_dir(job_id, epoch)
        if self.local:
            return sum(os.path.getsize(os.path.join(folder, n)) for n in self._listdir(folder))
        return int(sum(self.fs.du(folder, total=False).values())) if self.fs.exists(folder) else 0

    def job_ids(self) -> list[str]:
        """Every job with results here."""
        return self._listdir(self._join("jobs"))

    def epochs(self, job_id: str) -> list[str]:
        """The epochs a job has parts of."""
        return [e for e in self._listdir(self.job_dir(job_id)) if e != "expires" and not e.startswith(".")]

    def expires_at(self, job_id: str) -> float | None:
        """When a job's results go (None: the job is not finished, so never by a sweep)."""
        try:
            return float(self._read(self._join("jobs", job_id, "expires")))
        except (FileNotFoundError, ValueError):
            return None

    # --- deleting ------------------------------------------------------------------------------
    def delete_epochs(self, job_id: str, keep: str | None = None) -> None:
        """Delete a job's parts of every epoch but `keep` (all of them when None)."""
        for epoch in self.epochs(job_id):
            if epoch != keep:
                self._rmtree(self._join("jobs", job_id, epoch))

    def delete_job(self, job_id: str) -> None:
        """Delete everything of a job."""
        self._rmtree(self.job_dir(job_id))

    def sweep(self, now: float | None = None) -> list[str]:
        """Delete the results of every job whose expiry has passed; return their ids."""
        now = time.time() if now is None else now
        gone = []
        for job_id in self.job_ids():
            at = self.expires_at(job_id)
            if at is not None and at <= now:
                self.delete_job(job_id)
                gone.append(job_id)
        return gone

    def _rmtree(self, path: str) -> None:
        if self.local:
            import shutil

            shutil.rmtree(path, ignore_errors=True)
        else:
            with suppress(FileNotFoundError):
                self.fs.rm(path, recursive=True)


def _parse(body: bytes) -> Iterator[dict[str, Any]]:
    for line in body.splitlines():
        if line:
            yield json.loads(line)
