"""The Grafana dashboards: generated JSON (grafana-foundation-sdk) is checked in (and in the chart), passes the
SDK's schema, panels are sound, every query is valid."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

from chart.promql import metric_problems, promtool_check_exprs

ROOT = Path(__file__).resolve().parents[2]
GENERATOR = ROOT / "dashboards" / "generate.py"


def _generator():
    spec = importlib.util.spec_from_file_location("dashboards_generate", GENERATOR)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GEN = _generator()
RENDERED = GEN.render()


def panels(name: str) -> list[dict]:
    """The panels of a generated dashboard."""
    return json.loads(RENDERED[name])["panels"]


def exprs(name: str) -> list[str]:
    """Every PromQL query of a dashboard's panels."""
    return [t["expr"] for p in panels(name) for t in p["targets"]]


@pytest.mark.parametrize("folder", ["dashboards", "charts/phash-fleet/dashboards"])
def test_checked_in_json_is_what_the_generator_makes(folder):
    """Fails after an edit of the generator without a rerun: python dashboards/generate.py"""
    out = ROOT / folder
    assert sorted(p.name for p in out.glob("*.json")) == sorted(RENDERED)
    for name, text in RENDERED.items():
        assert (out / name).read_text() == text, f"{folder}/{name} is stale; run python dashboards/generate.py"


def test_generator_writes_the_files(tmp_path):
    """main() writes every dashboard into each folder it is given."""
    GEN.main((tmp_path / "a", tmp_path / "b"))
    for name, text in RENDERED.items():
        assert (tmp_path / "a" / name).read_text() == (tmp_path / "b" / name).read_text() == text


@pytest.mark.parametrize("name", sorted(RENDERED))
def test_panels_are_well_formed(name):
    """Unique ids, on-grid non-overlapping positions, a title and at least one query each, unique uid."""
    ps = panels(name)
    ids = [p["id"] for p in ps]
    assert len(ids) == len(set(ids))
    cells = set()
    for p in ps:
        assert p["title"] and p["targets"], p
        g = p["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"panel {p['title']!r} overlaps another"
                cells.add((x, y))
        assert all(t["datasource"]["uid"] == "${datasource}" for t in p["targets"])
        assert len({t["refId"] for t in p["targets"]}) == len(p["targets"])


def test_dashboards_have_distinct_uids():
    uids = [json.loads(t)["uid"] for t in RENDERED.values()]
    assert len(uids) == len(set(uids))


@pytest.mark.parametrize("name", sorted(RENDERED))
def test_every_query_uses_known_metrics_and_labels(name):
    """Metric names come from phashfleet.metrics or Dramatiq's middleware, with labels they really have."""
    problems = [p for e in exprs(name) for p in metric_problems(e)]
    assert problems == []


def test_every_query_parses(tmp_path):
    """promtool parses every query of every panel (Grafana variables replaced by sample values)."""
    everything = [e for name in RENDERED for e in exprs(name)]
    variables = [
        re.sub(r"^label_values\((.*), \w+\)$", r"\1", v["query"]["query"])
        for name in RENDERED
        for v in json.loads(RENDERED[name])["templating"]["list"]
        if v["type"] == "query"
    ]
    promtool_check_exprs(everything + variables, tmp_path)


def test_fleet_overview_covers_what_operators_watch():
    """Throughput, backlog, workers desired vs current, latency p50/p90/p99, failures by reason."""
    text = " ".join(exprs("fleet-overview.json"))
    for needle in (
        "rate(phashfleet_files_processed_total",
        "phashfleet_queue_backlog",
        "phashfleet_worker_replicas_desired",
        "phashfleet_worker_replicas_current",
        "histogram_quantile(0.5, sum by (le) (rate(phashfleet_hash_duration_seconds_bucket",
        "histogram_quantile(0.9,",
        "histogram_quantile(0.99,",
        "sum by (result, reason) (rate(phashfleet_file_failures_total",
    ):
        assert needle in text, needle


def test_job_dashboard_has_a_job_variable_and_its_panels():
    """Variables namespace and phashjob; progress, rate, ETA, failed and skipped panels filtered by them."""
    dash = json.loads(RENDERED["phash-job.json"])
    names = [v["name"] for v in dash["templating"]["list"]]
    assert names == ["datasource", "namespace", "phashjob"]
    titles = {p["title"] for p in dash["panels"]}
    assert {"Progress", "Rate", "ETA", "Failed", "Skipped"} <= titles
    for p in dash["panels"]:
        for t in p["targets"]:
            # Every series of a job, a worker's or the operator's, carries namespace and phashjob (its name).
            selectors = re.findall(r"phashfleet_\w+\{([^}]*)\}", t["expr"])
            assert selectors, f"{p['title']}: {t['expr']}"
            for sel in selectors:
                assert sel.startswith('namespace="$namespace", phashjob="$phashjob"'), f"{p['title']}: {t['expr']}"


@pytest.mark.parametrize("name", sorted(RENDERED))
def test_no_query_uses_the_scrape_job_label(name):
    """`job` is Prometheus's own target label (the scrape job); a PhashJob is `phashjob`."""
    dash = json.loads(RENDERED[name])
    texts = exprs(name) + [v["definition"] for v in dash["templating"]["list"] if v["type"] == "query"]
    assert [t for t in texts if re.search(r"\bjob\s*(=|!=|=~|!~)|\(\s*job\s*[,)]|,\s*job\s*[,)]", t)] == []


@pytest.mark.parametrize("name", sorted(RENDERED))
def test_checked_in_json_passes_the_sdks_schema(name):
    """The committed JSON reads into grafana-foundation-sdk's dashboard model and encodes back unchanged."""
    board = GEN.check((ROOT / "dashboards" / name).read_text())
    assert board.uid == json.loads(RENDERED[name])["uid"]


@pytest.mark.parametrize(
    ("where", "change"),
    [
        ("a misspelt dashboard field", lambda d: d.update(refreshh="30s")),
        ("an unknown panel field", lambda d: d["panels"][0].update(gridPoss={"x": 0})),
        ("an option the stat panel has not", lambda d: d["panels"][0]["options"].update(colourMode="value")),
        ("a query field Prometheus queries have not", lambda d: d["panels"][0]["targets"][0].update(exp="up")),
        ("a timeseries style it has not", lambda d: d["panels"][6]["fieldConfig"]["defaults"]["custom"].update(w=1)),
        ("a variable field", lambda d: d["templating"]["list"][0].update(labell="x")),
    ],
)
def test_the_schema_check_refuses_what_the_model_has_not(where, change):
    """The round trip through the SDK's model drops unknown fields, so check() fails on them."""
    dash = json.loads(RENDERED["fleet-overview.json"])
    change(dash)
    with pytest.raises(ValueError, match="not in the schema"):
        GEN.check(json.dumps(dash))


@pytest.mark.parametrize(
    ("where", "change"),
    [
        ("the dashboard's tooltip", lambda d: d.update(graphTooltip=7)),
        ("a stat panel's color mode", lambda d: d["panels"][0]["options"].update(colorMode="rainbow")),
        ("a threshold mode", lambda d: d["panels"][0]["fieldConfig"]["defaults"]["thresholds"].update(mode="abs")),
        ("a draw style", lambda d: d["panels"][6]["fieldConfig"]["defaults"]["custom"].update(drawStyle="lines")),
        ("a legend mode", lambda d: d["panels"][6]["options"]["legend"].update(displayMode="tabel")),
    ],
)
def test_the_schema_check_refuses_a_value_its_enum_has_not(where, change):
    """An enum field holds one of its members (from_json alone keeps any value)."""
    dash = json.loads(RENDERED["fleet-overview.json"])
    change(dash)
    with pytest.raises(ValueError, match="is none of"):
        GEN.check(json.dumps(dash))
