"""Every `# noqa` and `# type: ignore` in the checkout names what it silences and says why."""

from __future__ import annotations

import io
import os
import re
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: Folders never scanned besides hidden ones (.venv, .cache, .git): build output and caches.
SKIP_DIRS = {"__pycache__", "build", "dist", "node_modules"}

#: A comment that silences a checker: ruff's noqa anywhere in it, mypy's type-ignore.
DIRECTIVE = re.compile(r"#\s*noqa\b|#\s*type:\s*ignore\b", re.IGNORECASE)
NOQA = re.compile(r"#\s*noqa: [A-Z]+[0-9]+(?:, ?[A-Z]+[0-9]+)* - \S")
TYPE_IGNORE = re.compile(r"#\s*type: ignore\[[a-z-]+(?:, ?[a-z-]+)*\]\s+#\s*\S")


def unexplained_markers(source: str) -> list[tuple[int, str]]:
    """(line, comment) of each comment whose noqa or type-ignore lacks its codes or its reason.

    The forms: ``# noqa: CODE[, CODE] - reason`` and ``# type: ignore[code[, code]]  # reason``.
    """
    bad = []
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type != tokenize.COMMENT:
            continue
        wanted = len(DIRECTIVE.findall(token.string))
        if wanted > len(NOQA.findall(token.string)) + len(TYPE_IGNORE.findall(token.string)):
            bad.append((token.start[0], token.string))
    return bad


def _python_files() -> list[Path]:
    found = []
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in SKIP_DIRS and not d.endswith(".egg-info")]
        found += [Path(folder) / name for name in files if name.endswith((".py", ".pyi"))]
    return found


def test_the_rule_tells_explained_markers_from_bare_ones():
    """The checker itself: each bare or half-explained form is caught, the explained ones pass."""
    good = (
        "import os  # noqa: F401 - imported for its side effect\n"
        "x = f()  # noqa: BLE001, E501 - two codes, one reason\n"
        "y = g()  # type: ignore[no-untyped-call]  # g's library ships no types\n"
        's = "# noqa in a string is not a marker"\n'
        "# prose about noqa markers and type: ignore comments is no marker either\n"
    )
    assert unexplained_markers(good) == []
    bare = [
        "import os  # noqa\n",
        "import os  # noqa: F401\n",
        "import os  # NOQA:F401 - ruff reads it, but it is not the house form\n",
        "y = g()  # type: ignore\n",
        "y = g()  # type: ignore[no-untyped-call]\n",
        "y = g()  # type: ignore  # a reason but no code\n",
        "y = g()  # type: ignore[attr-defined]  # noqa: E501\n",
    ]
    for line in bare:
        assert unexplained_markers(line) == [(1, line.split("  ", 1)[1].rstrip("\n"))], line


def test_every_marker_in_the_checkout_says_what_and_why():
    """Write `# noqa: CODE - reason` and `# type: ignore[code]  # reason`; fix the code where you can."""
    files = _python_files()
    assert len(files) > 50, f"found only {len(files)} Python files under {ROOT}"
    problems = [
        f"{path.relative_to(ROOT)}:{line}: {comment}"
        for path in files
        for line, comment in unexplained_markers(path.read_text(encoding="utf-8"))
    ]
    assert not problems, "markers without their code or reason:\n" + "\n".join(problems)
