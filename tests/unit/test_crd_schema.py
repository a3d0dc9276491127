"""The CRD's spec rules cover every field: each but suspend is immutable, present or absent alike."""

from __future__ import annotations

from phashfleet.jobspec import manifest_schema

SPEC = manifest_schema()["properties"]["spec"]


def _rules(schema: dict) -> set[str]:
    return {r["rule"] for r in schema.get("x-kubernetes-validations", [])}


def test_every_field_but_suspend_refuses_a_change():
    changeable = {name for name, prop in SPEC["properties"].items() if "self == oldSelf" not in _rules(prop)}
    assert changeable == {"suspend"}


def test_a_field_without_a_default_cannot_be_added_or_removed():
    """A defaulted field is always there (its own rule sees every change); the others need a presence rule."""
    optional = {name for name, prop in SPEC["properties"].items()
                if "default" not in prop and name not in SPEC["required"]}
    assert optional == {"output", "duplicates"}
    for name in optional:
        assert f"has(self.{name}) == has(oldSelf.{name})" in _rules(SPEC), name
