"""Every link and file path the docs name resolves in the checkout, so a moved or renamed file breaks a test."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ("README.md", "docs/design.md", "charts/phash-fleet/README.md")
#: Folders besides the repository root and the document's own that a path may be written from:
#: the source roots (`phashfleet/job/status.py`) and the packages (`job/status.py`, `engine.py`'s folder).
PATH_BASES = ("worker", "operator", "worker/phashfleet", "operator/phashfleet_operator")
#: Files a command in the docs writes (git ignores them), so they need not exist.
GENERATED = ("bench/out/", "examples/results/")
#: Endings of the files a path reference names (output formats like .jsonl are data, not references).
FILE_ENDINGS = ("py", "lua", "md", "yaml", "yml", "json", "tpl", "toml", "txt", "png", "sh", "gotmpl")
_FILE = re.compile(r"\.(?:" + "|".join(FILE_ENDINGS) + r")$")
#: Folders searched for the bare module names (`reconcile.py`) the docs mention.
CODE_FOLDERS = ("worker", "operator", "tests", "bench", "dashboards", "scripts")

_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
# A relative path: not preceded by anything that would make it part of a URL, an absolute path or a word.
_PATH = re.compile(r"(?<![\w/.:~$@%{-])((?:[\w*.-]+/)+[\w*.-]*)")
_BARE_MODULE = re.compile(r"(?<![\w/.-])([\w-]+\.(?:py|lua))\b")
_DESIGN_REF = re.compile(r"docs/design\.md(#[\w-]+)?")
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$")


def slugs(markdown: str) -> set[str]:
    """The anchors GitHub gives a document's headings (lowercase, punctuation dropped, spaces to hyphens)."""
    seen: dict[str, int] = {}
    found: set[str] = set()
    in_code = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        match = None if in_code else _HEADING.match(line)
        if not match:
            continue
        slug = re.sub(r"[^\w\- ]", "", match.group(1).lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def _exists(ref: str, bases: list[Path]) -> bool:
    ref = ref.rstrip(".,;:")
    for base in bases:
        if any(c in ref for c in "*?["):
            if any(base.glob(ref)):
                return True
        elif (base / ref).exists():
            return True
    return False


def _anchor_ok(target: Path, anchor: str) -> bool:
    return not anchor or (target.suffix == ".md" and target.is_file() and anchor in slugs(target.read_text()))


def broken_references(doc: Path, root: Path = ROOT) -> Iterator[str]:
    """Each link, path or module name in the markdown file `doc` that names nothing in `root`."""
    text = doc.read_text()
    here = doc.parent
    for target in _LINK.findall(text):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):
            continue  # https:, mailto:, ...
        path, _, anchor = target.partition("#")
        resolved = (here / path) if path else doc
        if not resolved.exists():
            yield f"link {target!r}: {resolved} does not exist"
        elif not _anchor_ok(resolved, anchor):
            yield f"link {target!r}: {resolved.name} has no heading #{anchor}"
    bases = [here, root, *(root / b for b in PATH_BASES)]
    top = {p.name for p in root.iterdir() if not p.name.startswith(".")}
    prose = re.sub(r"(\]\()[^)\s]+\)", r"\1)", text)  # link targets were checked above
    for ref in dict.fromkeys(_PATH.findall(prose)):
        name = ref.rstrip(".,;:")
        if not (_FILE.search(name) or name.split("/", 1)[0] in top) or name.startswith(GENERATED):
            continue
        if not _exists(name, bases):
            yield f"path {name!r} does not exist"
    names = {p.name for folder in CODE_FOLDERS for p in (root / folder).rglob("*") if p.suffix in (".py", ".lua")}
    for module in dict.fromkeys(_BARE_MODULE.findall(text)):
        if module not in names:
            yield f"module {module!r} is no file in {', '.join(CODE_FOLDERS)}"


@pytest.mark.parametrize("name", DOCS)
def test_every_reference_in_the_docs_resolves(name: str) -> None:
    """Relative links (with their #anchors), path/to/file.py references and module names all exist."""
    broken = list(broken_references(ROOT / name))
    assert not broken, f"{name} names what the checkout does not have:\n" + "\n".join(broken)


def test_code_points_at_sections_that_exist() -> None:
    """Docstrings and comments that cite a section of docs/design.md by its anchor name a heading it has."""
    design = ROOT / "docs" / "design.md"
    anchors = slugs(design.read_text())
    bad = []
    for folder in ("worker", "operator", "tests", "bench", "dashboards", "charts"):
        for path in (ROOT / folder).rglob("*"):
            if path.suffix not in (".py", ".yaml", ".tpl", ".txt", ".md") or not path.is_file():
                continue
            for anchor in _DESIGN_REF.findall(path.read_text(errors="replace")):
                if anchor and anchor[1:] not in anchors:
                    bad.append(f"{path.relative_to(ROOT)}: docs/design.md{anchor}")
    assert not bad, "no such section in docs/design.md:\n" + "\n".join(bad)


def test_a_stale_reference_is_reported(tmp_path: Path) -> None:
    """The checker is not vacuous: a moved file, a missing link target, a bad anchor and a gone module all show."""
    (tmp_path / "worker" / "phashfleet" / "job").mkdir(parents=True)
    (tmp_path / "worker" / "phashfleet" / "job" / "status.py").write_text("")
    (tmp_path / "other.md").write_text("# Only heading\n")
    doc = tmp_path / "README.md"
    doc.write_text(
        "Fine: `worker/phashfleet/job/status.py`, `job/status.py`, [a](other.md#only-heading), `status.py`.\n"
        "Stale: `worker/phashfleet/store.py`, [b](docs/gone.md), [c](other.md#nope), `cached.py`.\n"
    )
    broken = list(broken_references(doc, tmp_path))
    assert broken == [
        f"link 'docs/gone.md': {tmp_path / 'docs/gone.md'} does not exist",
        "link 'other.md#nope': other.md has no heading #nope",
        "path 'worker/phashfleet/store.py' does not exist",
        "module 'cached.py' is no file in worker, operator, tests, bench, dashboards, scripts",
    ]
