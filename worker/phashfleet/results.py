"""The result record: one JSON object per file, as docs/design.md#result-records fixes it."""

from __future__ import annotations

import json
from typing import Any, Literal

Status = Literal["ok", "failed", "skipped"]

#: Field order of a record; csv/parquet outputs use these columns.
FIELDS = ("path", "hash", "algorithm", "hash_size", "status", "reason", "bytes", "width", "height")
OPTIONAL_FIELDS = ("cached", "frames", "group")
#: Longest reason text kept from an exception's message.
REASON_CHARS = 300


def make_record(
    path: str,
    *,
    algorithm: str,
    hash_size: int,
    status: Status,
    hash: str | None = None,
    reason: str | None = None,
    bytes: int | None = None,
    width: int | None = None,
    height: int | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Build a record dict with every field present (None where unknown).

    A reason starts with a short code and a colon (``"timeout: over 60 s"``): metrics use the
    code as a label, people read the rest.
    """
    record: dict[str, Any] = {
        "path": path,
        "hash": hash,
        "algorithm": algorithm,
        "hash_size": hash_size,
        "status": status,
        "reason": reason,
        "bytes": bytes,
        "width": width,
        "height": height,
    }
    for key, value in extra.items():
        if key not in OPTIONAL_FIELDS:
            raise TypeError(f"unknown record field {key!r}")
        record[key] = value
    return record


def dumps(record: dict[str, Any]) -> str:
    """Serialise a record to one compact JSON line (no trailing newline)."""
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


def batch_error(exc: BaseException) -> str:
    """The reason recorded for each file of a batch that kept raising `exc`."""
    text = " ".join(str(exc).split())
    text = text if len(text) <= REASON_CHARS else text[: REASON_CHARS - 3] + "..."
    return f"batch_error: {type(exc).__name__}: {text}" if text else f"batch_error: {type(exc).__name__}"


def failed_records(paths: list[str], settings: dict[str, Any], reason: str) -> list[dict[str, Any]]:
    """A `failed` record with `reason` for each path, in a job's stored settings (algorithm, hash_size)."""
    return [
        make_record(
            path, algorithm=settings["algorithm"], hash_size=settings["hash_size"], status="failed", reason=reason
        )
        for path in paths
    ]
