"""PHASHFLEET_EXTRA_SCHEMES lets a source name another fsspec filesystem: the spec accepts it, the listing walks it."""

from __future__ import annotations

import fsspec
import pytest

from phashfleet.files.listing import SourceSpecError, iter_source
from phashfleet.job.spec import SpecError, parse_spec


@pytest.fixture
def memory_source():
    """Three files on fsspec's in-memory filesystem, two of them images."""
    fs = fsspec.filesystem("memory")
    for name in ("a/one.png", "a/b/two.jpg", "a/notes.txt"):
        fs.pipe(f"/extra-src/{name}", b"x")
    yield "memory://extra-src/"
    fs.rm("/extra-src", recursive=True)


def test_an_extra_scheme_is_accepted_and_listed(memory_source, monkeypatch) -> None:
    monkeypatch.setenv("PHASHFLEET_EXTRA_SCHEMES", "memory")
    spec = parse_spec({"source": {"uri": memory_source}})
    names = sorted(iter_source(spec.source, allowed_roots=()))
    assert sorted(n.rsplit("/", 1)[1] for n in names) == ["one.png", "two.jpg"]


def test_without_the_setting_the_scheme_is_refused(memory_source, monkeypatch) -> None:
    monkeypatch.delenv("PHASHFLEET_EXTRA_SCHEMES", raising=False)
    with pytest.raises(SpecError, match="unsupported URL scheme"):
        parse_spec({"source": {"uri": memory_source}})
    with pytest.raises(SourceSpecError, match="unsupported scheme"):
        list(iter_source({"uri": memory_source}, allowed_roots=()))
