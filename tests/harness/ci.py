"""The one rule for a missing tool or package: a failure under CI=true, a skip (saying what) elsewhere."""

from __future__ import annotations

import os

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing(message: str):
    """Fail the test in CI, skip it elsewhere; `message` names what is missing and how to get it."""
    if IN_CI:
        pytest.fail(f"missing in CI: {message}")
    pytest.skip(f"not in CI and {message}")
