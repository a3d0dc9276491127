"""The chart ships crds/phashjobs.phashfleet.io.yaml byte for byte: crds/ is the one source of truth."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "crds" / "phashjobs.phashfleet.io.yaml"
CHART_CRDS = ROOT / "charts" / "phash-fleet" / "crds"
#: The PhashCronJob CRD, generated into crds/ and the chart (tests/unit/test_cronjob_crd_generated.py checks both).
CRONJOB = ROOT / "crds" / "phashcronjobs.phashfleet.io.yaml"
#: Files the chart's crds/ may hold besides the copy: kopf's peering CRDs, which have no other home.
CHART_ONLY = {"kopfpeerings.kopf.dev.yaml"}


def test_chart_crd_is_a_byte_identical_copy():
    """Fails on any drift; fix with: cp crds/phashjobs.phashfleet.io.yaml charts/phash-fleet/crds/"""
    copy = CHART_CRDS / SOURCE.name
    assert copy.exists(), f"{copy} is missing; copy {SOURCE} there"
    assert copy.read_bytes() == SOURCE.read_bytes(), (
        f"{copy} differs from {SOURCE}; run: cp {SOURCE.relative_to(ROOT)} {CHART_CRDS.relative_to(ROOT)}/"
    )


def test_chart_crds_hold_nothing_else():
    """Every other CRD file in the chart is an allowed chart-only one (no stale or stray copies)."""
    names = {p.name for p in CHART_CRDS.iterdir()}
    assert names == {SOURCE.name, CRONJOB.name} | CHART_ONLY


def test_kopf_peering_crds():
    """Namespaced KopfPeering and cluster-scoped ClusterKopfPeering of group kopf.dev, as kopf expects."""
    docs = list(yaml.safe_load_all((CHART_CRDS / "kopfpeerings.kopf.dev.yaml").read_text()))
    scopes = {d["spec"]["names"]["kind"]: (d["metadata"]["name"], d["spec"]["scope"]) for d in docs}
    assert scopes == {
        "KopfPeering": ("kopfpeerings.kopf.dev", "Namespaced"),
        "ClusterKopfPeering": ("clusterkopfpeerings.kopf.dev", "Cluster"),
    }
    for d in docs:
        (version,) = d["spec"]["versions"]
        assert version["name"] == "v1" and version["served"] and version["storage"]
        status = version["schema"]["openAPIV3Schema"]["properties"]["status"]
        assert status.get("x-kubernetes-preserve-unknown-fields") is True
