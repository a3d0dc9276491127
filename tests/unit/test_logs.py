"""phashfleet.logs: one stderr handler, plain text or JSON lines, the level and format passed on to children."""

from __future__ import annotations

import json
import logging

import pytest

from phashfleet import logs


@pytest.fixture(autouse=True)
def _restore_logging(monkeypatch):
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    for name in (logs.FORMAT_ENV, logs.LEVEL_ENV):  # setup() writes them: set first so they are restored
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def _lines(capsys) -> list[str]:
    return capsys.readouterr().err.splitlines()


def test_json_lines_carry_the_object_extras_and_the_exception(capsys):
    logs.setup("json", "info")
    log = logging.getLogger("phashfleet.test")
    log.info("listed %d files", 3, extra={**logs.about("ns", "photos"), "files": 3})
    log.debug("not shown at info")
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("it failed")
    first, second = (json.loads(line) for line in _lines(capsys) if line.startswith("{"))
    assert first["message"] == "listed 3 files" and first["level"] == "info"
    assert (first["namespace"], first["name"], first["files"], first["logger"]) == (
        "ns",
        "photos",
        3,
        "phashfleet.test",
    )
    assert first["time"].endswith("Z") and "k8s_ref" not in first
    assert second["level"] == "error" and "ValueError: boom" in second["exception"]


def test_text_is_the_default_and_names_the_object(capsys):
    logs.setup()
    logging.getLogger("phashfleet.test").warning("state lost", extra=logs.about("ns", "photos"))
    (line,) = _lines(capsys)
    assert " WARNING phashfleet.test [ns/photos] state lost" in line


def test_the_choice_reaches_child_processes_through_the_environment(monkeypatch, capsys):
    monkeypatch.setenv(logs.LEVEL_ENV, "warning")
    logs.setup("json")
    assert (logs.os.environ[logs.FORMAT_ENV], logs.os.environ[logs.LEVEL_ENV]) == ("json", "warning")
    logging.getLogger("x").info("hidden")
    assert _lines(capsys) == []
    with pytest.raises(ValueError, match=logs.LEVEL_ENV):
        logs.setup(level="loud")
