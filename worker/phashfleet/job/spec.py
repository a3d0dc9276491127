"""A PhashJob's spec as data: the CRD's schema (fields, defaults, bounds) applied as the apiserver applies it,
and the checks of its CEL rules."""

from __future__ import annotations

import copy
import difflib
import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from phashfleet.files import schemes

CRD_FILE = "phashjobs.phashfleet.io.yaml"
#: The CEL rule of spec that names the hash sizes whash allows.
_WHASH_RULE = re.compile(r"self\.algorithm != 'whash'.*self\.hashSize in \[([0-9, ]+)\]", re.DOTALL)
_TYPES: dict[str, type | tuple[type, ...]] = {
    "object": dict,
    "array": list,
    "string": str,
    "integer": int,
    "number": (int, float),
    "boolean": bool,
}
#: Schema keyword: (whether a value keeps to it, what the error says).
_BOUNDS: dict[str, tuple[Callable[[Any, Any], bool], str]] = {
    "minimum": (lambda v, n: v >= n, "must be >= {}"),
    "maximum": (lambda v, n: v <= n, "must be <= {}"),
    "minLength": (lambda v, n: len(v) >= n, "must be at least {} characters long"),
    "maxLength": (lambda v, n: len(v) <= n, "must be at most {} characters long"),
    "maxItems": (lambda v, n: len(v) <= n, "must have at most {} items"),
}


class SpecError(ValueError):
    """A spec the job cannot run with; the message starts with the field's path."""

    def __init__(self, field_path: str, message: str) -> None:
        super().__init__(f"{field_path}: {message}")
        self.field = field_path


@dataclass(frozen=True)
class JobSpec:
    """The parts of `PhashJob.spec` the job logic reads, with the CRD's defaults filled in."""

    source: dict[str, Any]
    algorithm: str
    hash_size: int
    exact: bool
    batch_size: int
    priority: str
    max_retries: int
    timeout_seconds: int
    output: dict[str, Any] | None
    max_distance: int | None
    suspend: bool
    ttl_seconds: int
    #: spec.failurePolicy.maxFailedPercent: above this share of failed files the job fails (None: no limit).
    max_failed_percent: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def priority_rank(self) -> int:
        """Higher runs first: high=2, normal=1, low=0."""
        return PRIORITIES[self.priority]

    def hash_settings(self) -> dict[str, Any]:
        """The settings every worker of this job hashes with (stored with the job in Redis)."""
        return {
            "algorithm": self.algorithm,
            "hash_size": self.hash_size,
            "exact": self.exact,
            "timeout_seconds": self.timeout_seconds,
            "batch_size": self.batch_size,
            "max_retries": self.max_retries,
        }


def _crd_path() -> Path:
    package = Path(__file__).resolve().parents[1]
    # A wheel carries a copy in the package (pyproject's force-include); a checkout has crds/.
    for path in (package / "crds" / CRD_FILE, package.parents[1] / "crds" / CRD_FILE):
        if path.is_file():
            return path
    raise FileNotFoundError(f"{CRD_FILE} is neither in the package nor in the checkout's crds/")


@functools.cache
def manifest_schema() -> dict[str, Any]:
    """The PhashJob openAPIV3Schema from the CRD: the one source of the spec's fields, defaults and bounds."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's is 7x faster; hashing processes read it too
    (version,) = yaml.load(_crd_path().read_text(), Loader=loader)["spec"]["versions"]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


def schema_of(path: str) -> dict[str, Any]:
    """The CRD's schema of one field, by its dotted path from the top ("spec.hashSize", "status.failures")."""
    node = manifest_schema()
    for name in path.split("."):
        node = node["properties"][name]
    return node


def spec_default(path: str) -> Any:
    """The CRD's default of a spec field ("hashSize", "source.include"): what a job gets when it names none."""
    return copy.deepcopy(schema_of(f"spec.{path}")["default"])


def spec_enum(path: str) -> tuple[Any, ...]:
    """The values the CRD allows for a spec field ("algorithm", "output.format"), in the CRD's order."""
    return tuple(schema_of(f"spec.{path}")["enum"])


def spec_bounds(path: str) -> tuple[int, int]:
    """The CRD's (minimum, maximum) of a bounded integer spec field ("hashSize")."""
    schema = schema_of(f"spec.{path}")
    return schema["minimum"], schema["maximum"]


@functools.cache
def whash_sizes() -> tuple[int, ...]:
    """The hash sizes the CRD's CEL rule allows when spec.algorithm is whash."""
    for rule in schema_of("spec").get("x-kubernetes-validations", ()):
        if found := _WHASH_RULE.search(rule["rule"]):
            return tuple(int(n) for n in found.group(1).split(","))
    raise LookupError(f"{CRD_FILE} has no CEL rule naming the hash sizes of whash")


#: Priority names, lowest first (the CRD's enum lists them so) -> rank; higher runs first.
PRIORITIES = {name: rank for rank, name in enumerate(spec_enum("priority"))}


def with_defaults(value: Any, schema: dict[str, Any]) -> Any:
    """`value` as the apiserver stores it: nulls dropped and the schema's defaults filled in, at every level."""
    props = schema.get("properties")
    if not isinstance(value, dict) or props is None:
        return value
    out = {name: copy.deepcopy(prop["default"]) for name, prop in props.items() if "default" in prop}
    out.update({name: with_defaults(item, props.get(name, {})) for name, item in value.items() if item is not None})
    return out


def _is_type(value: Any, kind: str) -> bool:
    return isinstance(value, _TYPES[kind]) and not (kind in ("integer", "number") and isinstance(value, bool))


def _check_known(value: dict[str, Any], props: dict[str, Any], path: str) -> None:
    for name in value:
        if name not in props:
            where = f"{path}.{name}" if path else name
            close = difflib.get_close_matches(name, props, n=1)
            hint = f"did you mean {close[0]}?" if close else f"known fields: {', '.join(props)}"
            raise SpecError(where, f"unknown field ({hint})")


def _check_object(value: dict[str, Any], schema: dict[str, Any], path: str) -> None:
    props = schema.get("properties")
    if props is None:
        return  # a free-form object, like metadata
    _check_known(value, props, path)
    for name in schema.get("required", ()):
        if name not in value:
            raise SpecError(f"{path}.{name}", "is required")
    for name, item in value.items():
        check_schema(item, props[name], f"{path}.{name}")


def check_schema(value: Any, schema: dict[str, Any], path: str) -> None:
    """Raise SpecError at the first place `value` breaks `schema`: an unknown field, a type, an enum or a bound."""
    kind = schema.get("type")
    if kind and not _is_type(value, kind):
        raise SpecError(path, f"must be of type {kind}, got {value!r}")
    if "enum" in schema and value not in schema["enum"]:
        raise SpecError(path, f"must be one of {', '.join(map(str, schema['enum']))}, got {value!r}")
    for keyword, (holds, text) in _BOUNDS.items():
        if keyword in schema and not holds(value, schema[keyword]):
            raise SpecError(path, f"{text.format(schema[keyword])}, got {value!r}")
    if isinstance(value, dict):
        _check_object(value, schema, path)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            check_schema(item, schema.get("items", {}), f"{path}[{i}]")


def _check_rules(spec: dict[str, Any]) -> None:
    """What the CRD's CEL rules refuse on create, and the URL schemes, which only code can check."""
    source = spec["source"]
    if not source.get("uri") and not source["files"]:
        raise SpecError("spec.source", "must name at least one of uri or files")
    for ref in [source.get("uri") or "", *source["files"]]:
        # Matched as written, so "S3://" is refused as it always was.
        if "://" in ref and ref.split("://", 1)[0] not in schemes.ALL + schemes.extra():
            raise SpecError("spec.source", f"unsupported URL scheme in {ref!r} ({schemes.HINT})")
    if spec["algorithm"] == "whash" and spec["hashSize"] not in whash_sizes():
        *most, last = whash_sizes()
        raise SpecError(
            "spec.hashSize",
            f"must be a power of two ({', '.join(map(str, most))} or {last}) when spec.algorithm is whash, "
            f"got {spec['hashSize']}",
        )


def parse_spec(spec: Any) -> JobSpec:
    """Check a spec dict as the apiserver would and return a JobSpec; raise SpecError naming the first bad field."""
    if not isinstance(spec, dict):
        raise SpecError("spec", "must be an object")
    schema = manifest_schema()["properties"]["spec"]
    spec = with_defaults(spec, schema)
    check_schema(spec, schema, "spec")
    _check_rules(spec)
    duplicates = spec.get("duplicates")
    return JobSpec(
        source=spec["source"],
        algorithm=spec["algorithm"],
        hash_size=spec["hashSize"],
        exact=spec["exact"],
        batch_size=spec["batchSize"],
        priority=spec["priority"],
        max_retries=spec["maxRetries"],
        timeout_seconds=spec["timeoutSeconds"],
        output=spec.get("output"),
        max_distance=duplicates["maxDistance"] if duplicates is not None else None,
        suspend=spec["suspend"],
        ttl_seconds=spec["ttlSecondsAfterFinished"],
        max_failed_percent=spec["failurePolicy"].get("maxFailedPercent"),
    )


def load_manifest(path: str | Path) -> dict[str, Any]:
    """Read a PhashJob manifest file; raise SpecError when it is not one (or has a field the CRD does not know)."""
    try:
        doc = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise SpecError("manifest", f"cannot read {path}: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("kind") != "PhashJob":
        kind = doc.get("kind") if isinstance(doc, dict) else None
        if kind == "PhashCronJob":  # only the operator schedules; its template is a PhashJob spec
            raise SpecError("kind", f"{path} is a PhashCronJob: the operator runs those on their schedule")
        raise SpecError("kind", f"{path} is not a PhashJob manifest")
    _check_known(doc, manifest_schema()["properties"], "")
    return doc
