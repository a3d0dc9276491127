"""Every value in values.yaml is documented with `## @param` and has a schema entry that agrees with it."""

from __future__ import annotations

import json
import re

import jsonschema
import yaml

from chart.render import CHART

VALUES_TEXT = (CHART / "values.yaml").read_text()
VALUES = yaml.safe_load(VALUES_TEXT)
SCHEMA = json.loads((CHART / "values.schema.json").read_text())
PARAMS = dict(re.findall(r"^\s*## @param (\S+) (.*)$", VALUES_TEXT, re.M))


def leaves(node, prefix=""):
    """Dotted paths of every documented unit: scalars, lists and empty maps (free-form maps)."""
    if isinstance(node, dict) and node:
        for key, value in node.items():
            yield from leaves(value, f"{prefix}{key}.")
    else:
        yield prefix.rstrip(".")


def schema_node(path: str) -> dict | None:
    """The schema of a dotted value path (following $ref and allOf), or None when there is none."""
    node = SCHEMA
    for key in path.split("."):
        node = _resolve(node)
        props = node.get("properties", {})
        if key not in props:
            return None
        node = props[key]
    return node


def _resolve(node: dict) -> dict:
    while True:
        if "$ref" in node:
            node = SCHEMA["definitions"][node["$ref"].rsplit("/", 1)[-1]]
        elif "allOf" in node and len(node["allOf"]) == 1 and "properties" not in node:
            node = {**node["allOf"][0], **{k: v for k, v in node.items() if k != "allOf"}}
        else:
            return node


def test_every_value_has_a_param_doc():
    """values.yaml: `## @param` on every leaf value, and no @param naming a value that does not exist."""
    values = set(leaves(VALUES))
    assert sorted(values - set(PARAMS)) == [], "values without ## @param"
    assert sorted(set(PARAMS) - values) == [], "## @param for values that do not exist"


def test_every_value_has_a_schema_entry_with_its_doc_and_default():
    """The schema names every value with the same description and default as values.yaml."""
    missing = []
    for path in leaves(VALUES):
        node = schema_node(path)
        if node is None:
            missing.append(path)
            continue
        assert node.get("description") == PARAMS[path], f"{path}: schema description differs from its @param"
        assert node.get("default") == _get(VALUES, path), f"{path}: schema default differs from values.yaml"
    assert missing == [], "values without a schema entry"


def test_schema_is_strict_everywhere():
    """Every object with listed properties forbids unknown ones (additionalProperties: false)."""
    loose = []

    def walk(node, where):
        if isinstance(node, dict):
            if "properties" in node and node.get("additionalProperties") is not False:
                loose.append(where)
            for key, value in node.items():
                walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{where}/{i}")

    walk(SCHEMA, "#")
    assert loose == []


def test_defaults_validate_against_the_schema():
    """values.yaml itself passes the schema (a draft-07 schema)."""
    jsonschema.Draft7Validator.check_schema(SCHEMA)
    jsonschema.validate(VALUES, SCHEMA)


def _get(values, path):
    for key in path.split("."):
        values = values[key]
    return values
