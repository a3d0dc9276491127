"""One place for each spec fact: the CRD. Code reads it (listing, hashing, dupes, schemes); the copies that
must stay in prose (the CRD's own descriptions, docs/design.md's table) are checked against it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from phashfleet.files import schemes
from phashfleet.files.access import is_local, remote_scheme_allowed
from phashfleet.files.listing import DEFAULT_INCLUDE, iter_source
from phashfleet.hashing.algorithms import exact_hash
from phashfleet.hashing.filetypes import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS
from phashfleet.job.spec import (
    PRIORITIES,
    SpecError,
    parse_spec,
    schema_of,
    spec_bounds,
    spec_default,
    spec_enum,
    whash_sizes,
)
from phashfleet.state.keys import MAX_FAILURES

ROOT = Path(__file__).resolve().parents[2]
SPEC = schema_of("spec")


def _fields(schema: dict[str, Any], prefix: str = "") -> dict[str, dict[str, Any]]:
    """Every field under `schema`, by dotted path ("source.uri", "duplicates.maxDistance")."""
    out: dict[str, dict[str, Any]] = {}
    for name, prop in (schema.get("properties") or {}).items():
        out[prefix + name] = prop
        out.update(_fields(prop, f"{prefix}{name}."))
    return out


def test_a_source_without_include_lists_what_a_job_without_include_lists(tmp_path):
    for name in ("a.jpg", "b.PNG", "c.ppm", "d.jfif", "e.mov", "f.avi", "g.txt"):
        (tmp_path / name).write_bytes(b"x")
    roots = [str(tmp_path)]
    job = parse_spec({"source": {"uri": str(tmp_path)}})
    assert list(iter_source({"uri": str(tmp_path)}, roots)) == list(iter_source(job.source, roots))
    assert tuple(job.source["include"]) == DEFAULT_INCLUDE


def test_every_default_include_is_an_extension_hashing_knows_as_image_or_video():
    for pattern in spec_default("source.include"):
        found = re.fullmatch(r"\*\*/\*(\.\w+)", pattern)
        assert found, pattern
        assert found.group(1) in IMAGE_EXTENSIONS | VIDEO_EXTENSIONS, pattern


@pytest.mark.parametrize("algorithm", spec_enum("algorithm"))
def test_every_algorithm_the_crd_allows_hashes_an_image(algorithm):
    image = Image.linear_gradient("L").convert("RGB").resize((64, 48))
    assert str(exact_hash(image, algorithm, spec_default("hashSize")))


def test_whash_sizes_are_the_powers_of_two_within_the_hash_size_bounds():
    low, high = spec_bounds("hashSize")
    assert whash_sizes() == tuple(2**k for k in range(8) if low <= 2**k <= high)
    rule = next(r for r in SPEC["x-kubernetes-validations"] if "whash" in r["rule"])
    *most, last = whash_sizes()
    assert f"({', '.join(map(str, most))} or {last})" in rule["message"]
    with pytest.raises(SpecError, match=re.escape(f"({', '.join(map(str, most))} or {last})")):
        parse_spec({"source": {"uri": "/d"}, "algorithm": "whash", "hashSize": 6})


def test_priorities_rank_in_the_order_their_names_say():
    assert PRIORITIES["high"] > PRIORITIES["normal"] > PRIORITIES["low"]
    assert set(PRIORITIES) == set(spec_enum("priority"))


def test_every_scheme_is_one_a_job_may_name_and_a_worker_opens_or_reads_locally(monkeypatch):
    monkeypatch.delenv("PHASHFLEET_EXTRA_SCHEMES", raising=False)
    for scheme in schemes.ALL:
        ref = f"{scheme}://host/d/a.jpg" if scheme else "/d/a.jpg"
        parse_spec({"source": {"uri": ref}})
        assert is_local(ref) == (scheme in schemes.LOCAL), ref
        assert remote_scheme_allowed(ref) == (scheme in schemes.REMOTE), ref
    with pytest.raises(SpecError, match=re.escape(schemes.HINT)):
        parse_spec({"source": {"uri": "ftp://host/d/"}})


def _quoted(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def misquoted_descriptions(schema: dict[str, Any]) -> list[str]:
    """Fields whose description names a default, bound or allowed value other than the schema's own."""
    wrong = []
    for path, prop in _fields(schema).items():
        text = prop.get("description", "")
        if "default" in prop and not isinstance(prop["default"], (list, dict)):
            default = _quoted(prop["default"])
            if "enum" in prop:
                quoted = f"{default} (default)" in text or f"{default} (the default)" in text
            elif isinstance(prop["default"], bool):
                quoted = f"{default} (the default)" in text
            else:
                quoted = f"default {default}" in text
            if not quoted:
                wrong.append(f"{path}: default {default}")
        for value in prop.get("enum", ()):
            if value not in text:
                wrong.append(f"{path}: enum {value}")
        if "minimum" in prop:
            if "maximum" in prop:
                bound = f"{_quoted(prop['minimum'])} to {_quoted(prop['maximum'])}"
            else:
                bound = f"at least {_quoted(prop['minimum'])}"
            if bound not in text:
                wrong.append(f"{path}: {bound}")
        if "maxItems" in prop and f"at most {prop['maxItems']}" not in text:
            wrong.append(f"{path}: at most {prop['maxItems']}")
    return wrong


def test_the_crd_descriptions_quote_its_own_defaults_and_bounds():
    assert misquoted_descriptions(SPEC) == []


def test_a_description_that_drifted_from_its_schema_is_caught():
    drifted = {
        "properties": {
            "batchSize": {"description": "Files per message, 1 to 1000, default 64.", "minimum": 1, "maximum": 999},
            "priority": {"description": "low, normal (default) or high.", "enum": ["low", "normal"], "default": "low"},
        }
    }
    assert misquoted_descriptions(drifted) == ["batchSize: 1 to 999", "priority: default low"]


def _design_table() -> dict[str, tuple[str, str]]:
    """docs/design.md's spec table: field -> (default, bounds) cells, backticks dropped."""
    text = (ROOT / "docs" / "design.md").read_text()
    section = text.split("### Spec", 1)[1].split("###", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip().replace("`", "") for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0] not in ("field", "---"):
            rows[cells[0]] = (cells[1], cells[2])
    return rows


def _design_cells(path: str, prop: dict[str, Any]) -> tuple[str | None, str | None]:
    """The (default, bounds) cells docs/design.md should show for a field; None where it says it in words."""
    default = _quoted(prop["default"]) if "default" in prop and not isinstance(prop["default"], dict) else None
    if isinstance(prop.get("default"), list):
        default = str(prop["default"]).replace("'", "") if not prop["default"] else None
    if "enum" in prop:
        bounds = ", ".join(prop["enum"])
    elif "minimum" in prop and "maximum" in prop:
        bounds = f"{_quoted(prop['minimum'])}-{_quoted(prop['maximum'])}"
    elif "minimum" in prop:
        bounds = f"≥ {prop['minimum']}"
    elif "maxLength" in prop:
        bounds = f"{prop['minLength']}-{prop['maxLength']} chars"
    elif "maxItems" in prop:
        bounds = f"≤ {prop['maxItems']}"
    else:
        bounds = ""
    return default, bounds


def design_table_drift(table: dict[str, tuple[str, str]]) -> list[str]:
    """The rows of a spec table whose default or bounds are not the CRD's."""
    wrong = []
    for path, prop in _fields(SPEC).items():
        if prop.get("type") == "object" or path not in table:
            continue
        shown_default, shown_bounds = table[path]
        default, bounds = _design_cells(path, prop)
        if default is not None and shown_default != default:
            wrong.append(f"{path}: default {shown_default!r}, the CRD's is {default!r}")
        # An enum is the whole cell; a range may go on in words ("0-100, fractions allowed").
        more = () if "enum" in prop else (bounds + " ", bounds + ";", bounds + ",")
        if bounds and not (shown_bounds == bounds or (more and shown_bounds.startswith(more))):
            wrong.append(f"{path}: bounds {shown_bounds!r}, the CRD's are {bounds!r}")
    return wrong


def test_the_design_docs_spec_table_quotes_the_crd():
    table = _design_table()
    assert {"source.uri", "algorithm", "hashSize", "batchSize", "maxRetries", "timeoutSeconds"} <= set(table)
    assert design_table_drift(table) == []
    *most, last = whash_sizes()
    assert table["hashSize"][1].endswith(f"whash: {', '.join(map(str, most))} or {last}")


def test_a_design_table_that_drifted_from_the_crd_is_caught():
    table = {**_design_table(), "batchSize": ("64", "1-10000"), "maxRetries": ("5", "0-20")}
    assert design_table_drift(table) == [
        "batchSize: bounds '1-10000', the CRD's are '1-1000'",
        "maxRetries: default '5', the CRD's is '3'",
    ]


def test_the_design_doc_quotes_the_failure_cap_and_the_remote_schemes():
    text = " ".join((ROOT / "docs" / "design.md").read_text().split())
    assert f"| `failures` | the first {MAX_FAILURES} failed files" in text
    *most, last = (f"`{s}`" for s in schemes.REMOTE)
    assert f"Besides local files only {', '.join(most)} and {last} URLs are opened" in text
