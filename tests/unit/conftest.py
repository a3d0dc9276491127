"""Unit fixtures: a result store on a local folder and on an fsspec object store (memory://)."""

from __future__ import annotations

import uuid

import fsspec
import pytest

from phashfleet.state.result_store import ResultStore


@pytest.fixture(params=["local", "memory"])
def any_result_store(request, tmp_path):
    """Each test runs once on a folder and once on memory:// (the object-store code path)."""
    if request.param == "local":
        yield ResultStore(str(tmp_path / "store"))
        return
    root = f"memory://results-{uuid.uuid4().hex[:8]}"
    yield ResultStore(root)
    fsspec.filesystem("memory").rm(root.removeprefix("memory://"), recursive=True)
