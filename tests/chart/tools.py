"""Find the command-line tools the chart tests run; a missing one skips locally and fails on CI.

helm, kubectl, promtool and prometheus come from the harness (tests/harness/tools.py builds the
Go ones once); hadolint and checkov are Python-packaged linters looked up beside the venv.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from harness import tools as harness_tools
from harness.ci import missing

REPO = Path(__file__).resolve().parents[2]

#: Linters outside the harness: (env override, places tried before PATH).
_LINTERS = {
    "hadolint": ("PHASHFLEET_HADOLINT", [Path(sys.executable).parent / "hadolint"]),
    "checkov": (
        "PHASHFLEET_CHECKOV",
        [harness_tools.CACHE / "checkov-venv" / "bin" / "checkov", Path(sys.executable).parent / "checkov"],
    ),
}


def find_tool(name: str) -> str | None:
    """Return the path of a tool, or None when it is nowhere to be found."""
    if name in _LINTERS:
        env, places = _LINTERS[name]
        if os.environ.get(env):
            return os.environ[env]
        for place in places:
            if place.exists():
                return str(place)
        return shutil.which(name)
    try:
        return str(harness_tools.find(name))
    except Exception:  # noqa: BLE001 - ToolMissing, or a failed build: either way it is missing
        return None


def require_tool(name: str) -> str:
    """Return a tool's path; skip the test naming the tool, or fail when CI=true."""
    path = find_tool(name)
    if path:
        return path
    missing(f"{name} is not installed (see the chart section of the README for how CI gets it)")
