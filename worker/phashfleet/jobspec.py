"""A PhashJob's spec as data: defaults as the CRD has them, and the checks the schema cannot make."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ALGORITHMS = ("phash", "dhash", "ahash", "whash", "colorhash")
PRIORITIES = {"low": 0, "normal": 1, "high": 2}
OUTPUT_FORMATS = ("jsonl", "csv", "parquet")
SCHEMES = ("", "file", "s3", "s3a", "http", "https")


def _crd_default_include() -> list[str]:
    return ["**/*.jpg", "**/*.jpeg", "**/*.png", "**/*.webp", "**/*.gif", "**/*.bmp", "**/*.tif", "**/*.tiff",
            "**/*.heic", "**/*.heif", "**/*.avif", "**/*.mp4", "**/*.mov", "**/*.mkv", "**/*.webm"]


class SpecError(ValueError):
    """A spec the job cannot run with; the message starts with the field's path."""

    def __init__(self, field_path: str, message: str) -> None:
        super().__init__(f"{field_path}: {message}")
        self.field = field_path


@dataclass(frozen=True)
class JobSpec:
    """The parts of `PhashJob.spec` the job logic reads, with the CRD's defaults filled in."""

    source: dict[str, Any]
    algorithm: str = "phash"
    hash_size: int = 8
    exact: bool = False
    batch_size: int = 64
    priority: str = "normal"
    max_retries: int = 3
    timeout_seconds: int = 60
    output: dict[str, Any] | None = None
    max_distance: int | None = None
    suspend: bool = False
    ttl_seconds: int = 86400
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def priority_rank(self) -> int:
        """Higher runs first: high=2, normal=1, low=0."""
        return PRIORITIES[self.priority]

    def hash_settings(self) -> dict[str, Any]:
        """The settings every worker of this job hashes with (stored with the job in Redis)."""
        return {"algorithm": self.algorithm, "hash_size": self.hash_size, "exact": self.exact,
                "timeout_seconds": self.timeout_seconds, "batch_size": self.batch_size}


def _bounded(spec: dict, name: str, default: int, low: int, high: int | None) -> int:
    value = spec.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        bound = f"{low}..{high}" if high is not None else f">= {low}"
        raise SpecError(f"spec.{name}", f"must be an integer {bound}, got {value!r}")
    return value


def _choice(spec: dict, name: str, default: str, allowed) -> str:
    value = spec.get(name, default)
    if value not in allowed:
        raise SpecError(f"spec.{name}", f"must be one of {', '.join(allowed)}, got {value!r}")
    return value


def _scheme(uri: str) -> str:
    return uri.split("://", 1)[0] if "://" in uri else ""


def parse_spec(spec: dict[str, Any]) -> JobSpec:
    """Check a spec dict and return a JobSpec; raise SpecError naming the first bad field."""
    if not isinstance(spec, dict):
        raise SpecError("spec", "must be an object")
    source = spec.get("source")
    if not isinstance(source, dict):
        raise SpecError("spec.source", "is required and must be an object")
    if not source.get("uri") and not source.get("files"):
        raise SpecError("spec.source", "must name at least one of uri or files")
    for ref in [source.get("uri") or "", *(source.get("files") or [])]:
        if ref and _scheme(ref) not in SCHEMES:
            raise SpecError("spec.source", f"unsupported URL scheme in {ref!r} (use file://, s3:// or http(s)://)")
    source = {"include": _crd_default_include(), "exclude": [], "files": [], **source}
    output = spec.get("output")
    if output is not None:
        if not isinstance(output, dict) or not output.get("uri"):
            raise SpecError("spec.output.uri", "is required when output is set")
        output = {"format": "jsonl", **output}
        if output["format"] not in OUTPUT_FORMATS:
            raise SpecError("spec.output.format", f"must be one of {', '.join(OUTPUT_FORMATS)}")
    duplicates = spec.get("duplicates")
    max_distance = None
    if duplicates is not None:
        max_distance = _bounded(duplicates if isinstance(duplicates, dict) else {}, "maxDistance", 6, 0, 16)
    return JobSpec(
        source=source,
        algorithm=_choice(spec, "algorithm", "phash", ALGORITHMS),
        hash_size=_bounded(spec, "hashSize", 8, 4, 32),
        exact=bool(spec.get("exact", False)),
        batch_size=_bounded(spec, "batchSize", 64, 1, 1000),
        priority=_choice(spec, "priority", "normal", tuple(PRIORITIES)),
        max_retries=_bounded(spec, "maxRetries", 3, 0, 20),
        timeout_seconds=_bounded(spec, "timeoutSeconds", 60, 1, 3600),
        output=output,
        max_distance=max_distance,
        suspend=bool(spec.get("suspend", False)),
        ttl_seconds=_bounded(spec, "ttlSecondsAfterFinished", 86400, 0, None),
    )


def load_manifest(path: str | Path) -> dict[str, Any]:
    """Read a PhashJob manifest file; raise SpecError when it is not one."""
    try:
        doc = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise SpecError("manifest", f"cannot read {path}: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("kind") != "PhashJob":
        raise SpecError("kind", f"{path} is not a PhashJob manifest")
    return doc
