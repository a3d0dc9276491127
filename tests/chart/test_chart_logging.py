"""logging.level and logging.format reach the operator and the workers (phashfleet/logs.py reads them)."""

from __future__ import annotations

from chart.render import RELEASE, render, render_error

P = f"{RELEASE}-phash-fleet"


def _env(rendered, name: str) -> dict:
    (container,) = rendered.get("Deployment", name)["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e.get("value") for e in container.get("env", [])}


def test_the_logging_values_reach_the_operator_and_the_workers():
    for values, expected in (
        ({}, ("info", "text")),
        ({"logging": {"level": "debug", "format": "json"}}, ("debug", "json")),
    ):
        rendered = render(values)
        for name in (f"{P}-operator", f"{P}-worker"):
            env = _env(rendered, name)
            assert (env["PHASHFLEET_LOG_LEVEL"], env["PHASHFLEET_LOG_FORMAT"]) == expected, (name, values)


def test_an_unknown_level_or_format_is_refused_naming_the_value():
    assert "logging/level" in render_error({"logging": {"level": "loud"}})
    assert "logging/format" in render_error({"logging": {"format": "xml"}})
