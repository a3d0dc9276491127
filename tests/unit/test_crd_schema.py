"""The CRD's spec rules cover every field: each but suspend is immutable, present or absent alike."""

from __future__ import annotations

from pathlib import Path

from phashfleet.job.spec import manifest_schema

SPEC = manifest_schema()["properties"]["spec"]


def _rules(schema: dict) -> set[str]:
    return {r["rule"] for r in schema.get("x-kubernetes-validations", [])}


def test_every_field_but_suspend_refuses_a_change():
    changeable = {name for name, prop in SPEC["properties"].items() if "self == oldSelf" not in _rules(prop)}
    assert changeable == {"suspend"}


def test_a_field_without_a_default_cannot_be_added_or_removed():
    """A defaulted field is always there (its own rule sees every change); the others need a presence rule."""
    optional = {
        name for name, prop in SPEC["properties"].items() if "default" not in prop and name not in SPEC["required"]
    }
    assert optional == {"output", "duplicates"}
    for name in optional:
        assert f"has(self.{name}) == has(oldSelf.{name})" in _rules(SPEC), name


#: The keys a structural schema node may have (apiextensions.k8s.io/v1 JSONSchemaProps that CRDs allow).
SCHEMA_KEYS = {
    "type",
    "description",
    "properties",
    "items",
    "required",
    "enum",
    "default",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minLength",
    "maxLength",
    "pattern",
    "format",
    "minItems",
    "maxItems",
    "uniqueItems",
    "minProperties",
    "maxProperties",
    "additionalProperties",
    "nullable",
    "oneOf",
    "anyOf",
    "allOf",
    "not",
    "title",
    "example",
    "x-kubernetes-validations",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-int-or-string",
    "x-kubernetes-embedded-resource",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-map-type",
}


def test_every_schema_node_has_only_schema_keys():
    """A comma inside an unquoted flow-style description ({description: Why, for people}) makes a stray key:
    the apiserver drops it, so Helm 4's server-side apply then conflicts with a Helm 3 install on .spec.versions."""
    import yaml

    stray = []

    def walk(node: dict, path: str) -> None:
        stray.extend(f"{path}.{key}" for key in set(node) - SCHEMA_KEYS)
        for name, child in (node.get("properties") or {}).items():
            walk(child, f"{path}.{name}")
        if isinstance(node.get("items"), dict):
            walk(node["items"], f"{path}[]")

    crd = Path(__file__).resolve().parents[2] / "crds" / "phashjobs.phashfleet.io.yaml"
    for version in yaml.safe_load(crd.read_text())["spec"]["versions"]:
        walk(version["schema"]["openAPIV3Schema"], version["name"])
    assert stray == []
