"""Property-based manifests: each is refused naming a spec field, or accepted and driven to an end state."""

from __future__ import annotations

import itertools
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.wait import wait_for

FIELDS = {
    "algorithm": st.one_of(
        st.sampled_from(["phash", "dhash", "ahash", "whash", "colorhash"]),
        st.sampled_from(["md5", "", "PHASH"]),
        st.integers(),
    ),
    "hashSize": st.one_of(st.integers(min_value=-2, max_value=40), st.text(max_size=3)),
    "exact": st.one_of(st.booleans(), st.sampled_from(["yes", 1])),
    "batchSize": st.integers(min_value=-1, max_value=1500),
    "priority": st.sampled_from(["low", "normal", "high", "urgent", None]),
    "maxRetries": st.integers(min_value=-3, max_value=25),
    "timeoutSeconds": st.integers(min_value=-1, max_value=4000),
    "suspend": st.booleans(),
    "ttlSecondsAfterFinished": st.integers(min_value=-5, max_value=100),
    "duplicates": st.one_of(
        st.fixed_dictionaries({"maxDistance": st.integers(min_value=-1, max_value=20)}), st.just({})
    ),
    "output": st.one_of(
        st.fixed_dictionaries({"format": st.sampled_from(["jsonl", "csv", "parquet", "xml"])}),
        st.just({"uri": "file:///nowhere/out.jsonl"}),
    ),
    "bogusField": st.integers(),
}


@st.composite
def specs(draw):
    spec = {name: draw(strategy) for name, strategy in FIELDS.items() if draw(st.booleans())}
    source = draw(
        st.sampled_from(
            [
                {"uri": "NOWHERE"},
                {},
                {"files": []},
                {"files": ["NOWHERE/a.jpg"]},
                {"uri": "NOWHERE", "include": ["*.png"]},
                {"uri": "ftp://x/y"},
            ]
        )
    )
    if draw(st.integers(min_value=0, max_value=9)) > 0:
        spec["source"] = source
    return spec


_names = (f"gen-{i}" for i in itertools.count())


def test_every_generated_manifest_is_refused_or_handled(control_plane, fleet):
    ns = fleet["namespace"]
    empty = fleet["tmp"] / "empty-source"
    empty.mkdir()
    accepted: list[str] = []

    @settings(
        max_examples=30,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(specs())
    def check(spec):
        text = json.dumps(spec).replace("NOWHERE", str(empty))
        name = next(_names)
        manifest = {
            "apiVersion": "phashfleet.io/v1alpha1",
            "kind": "PhashJob",
            "metadata": {"name": name},
            "spec": json.loads(text),
        }
        result = control_plane.apply(manifest, namespace=ns, check=False)
        if result.returncode != 0:
            assert "spec" in result.stderr, f"refusal does not name a field: {result.stderr}"
        else:
            accepted.append(name)

    check()
    assert accepted, "no generated manifest was accepted; the generator is too narrow"

    def all_settled() -> bool:
        for name in accepted:
            phase = control_plane.get_json("phj", name, namespace=ns).get("status", {}).get("phase")
            if phase not in ("Succeeded", "Failed", "Suspended"):
                return False
        return True

    wait_for(all_settled, timeout=180, interval=1, what="every accepted job to reach an end state")
    assert fleet["operator"].alive, "the operator crashed on a generated manifest"
