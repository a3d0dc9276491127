"""Manifests for tests: a minimal object renamed and with some spec fields set, the original untouched."""

from __future__ import annotations

import copy
from typing import Any


def variant(minimal: dict[str, Any], name: str, **spec: Any) -> dict[str, Any]:
    """A deep copy of `minimal` named `name`, with `spec` merged into its spec."""
    manifest = copy.deepcopy(minimal)
    manifest["metadata"]["name"] = name
    manifest["spec"].update(spec)
    return manifest
