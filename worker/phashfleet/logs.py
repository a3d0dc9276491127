"""Logging for every phashfleet command: one stderr handler, plain text (default) or JSON lines, one level.

The format and level come from `--log-format`/`--log-level` or PHASHFLEET_LOG_FORMAT/PHASHFLEET_LOG_LEVEL;
`setup` writes the chosen ones back to the environment, so child processes (Dramatiq's workers, a local
run's workers) log the same way. kopf's records go through the same handler: kopf's per-object
records carry `k8s_ref`, and so do ours about a job (`about`), so both show the object's namespace/name.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import sys
from typing import Any, TextIO

FORMAT_ENV = "PHASHFLEET_LOG_FORMAT"
LEVEL_ENV = "PHASHFLEET_LOG_LEVEL"
FORMATS = ("text", "json")
LEVELS = ("debug", "info", "warning", "error", "critical")
DEFAULT_FORMAT, DEFAULT_LEVEL = "text", "info"

#: Attributes every LogRecord has; anything else on a record came from `extra=` and is logged as a field.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
#: kopf's own extras: `k8s_ref` is shown as namespace/name, the others are its bookkeeping.
_HIDDEN = {"k8s_ref", "k8s_skip", "settings"}


def about(namespace: str | None, name: str | None) -> dict[str, Any]:
    """`extra=` for a record about one object (a PhashJob): the same key kopf uses for its own."""
    return {"k8s_ref": {"namespace": namespace, "name": name}}


def _time(record: logging.LogRecord) -> str:
    stamp = dt.datetime.fromtimestamp(record.created, dt.UTC)
    return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and k not in _HIDDEN}


def _ref(record: logging.LogRecord) -> dict[str, Any]:
    ref = getattr(record, "k8s_ref", None) or {}
    return {k: ref[k] for k in ("namespace", "name") if ref.get(k)}


class TextFormatter(logging.Formatter):
    """`TIME LEVEL LOGGER [NAMESPACE/NAME] MESSAGE`, then any traceback (extras are for the JSON lines)."""

    def format(self, record: logging.LogRecord) -> str:
        """One line per record (plus the traceback lines of an exception)."""
        ref = _ref(record)
        where = f" [{'/'.join(ref[k] for k in ('namespace', 'name') if k in ref)}]" if ref else ""
        line = f"{_time(record)} {record.levelname} {record.name}{where} {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, namespace/name, extras, exception."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as a single-line JSON object (a traceback is the "exception" string)."""
        entry: dict[str, Any] = {
            "time": _time(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **_ref(record),
            **_extras(record),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class _StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever sys.stderr is at the time: Dramatiq's workers point it at their log pipe."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


def setup(log_format: str | None = None, level: str | None = None) -> None:
    """Send every logger's records to stderr in `log_format` at `level` (given, else env, else text/info)."""
    log_format = (log_format or os.environ.get(FORMAT_ENV) or DEFAULT_FORMAT).lower()
    level = (level or os.environ.get(LEVEL_ENV) or DEFAULT_LEVEL).lower()
    if log_format not in FORMATS:
        raise ValueError(f"{FORMAT_ENV} must be one of {', '.join(FORMATS)}, got {log_format!r}")
    if level not in LEVELS:
        raise ValueError(f"{LEVEL_ENV} must be one of {', '.join(LEVELS)}, got {level!r}")
    os.environ[FORMAT_ENV], os.environ[LEVEL_ENV] = log_format, level
    handler = _StderrHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # asyncio's debug chatter (slow callbacks, selectors) is not ours to show unless debugging.
    logging.getLogger("asyncio").setLevel(logging.DEBUG if level == "debug" else logging.WARNING)
