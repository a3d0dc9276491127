"""Why a file produced no hash: a coded failure or a skip, turned into a record's reason."""

from __future__ import annotations

from phashfleet.results import Status


class FileOutcome(Exception):
    """Base: a file ends without a hash; ``reason`` is ``"<code>: <detail>"``."""

    status: Status = "failed"

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail

    @property
    def reason(self) -> str:
        """The record's reason text: a short code, a colon, then words for people."""
        return f"{self.code}: {self.detail}"


class FileFailed(FileOutcome):
    """The file should have been hashable but is not (unreadable, corrupt, too big, too slow)."""


class FileSkipped(FileOutcome):
    """The file is not something to hash (audio, text, ...): counted as skipped, never failed."""

    status = "skipped"
