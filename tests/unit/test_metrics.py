"""The `phashfleet_` metrics' labels and help: no label Prometheus itself sets, and help that names what the code emits."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from prometheus_client import Counter, Gauge, Histogram, Summary

from phashfleet import metrics
from phashfleet.state import keys
from phashfleet_operator.reconcile import job_id

ROOT = Path(__file__).resolve().parents[2]
COLLECTORS = {
    value._name: value for value in vars(metrics).values() if isinstance(value, (Counter, Gauge, Histogram, Summary))
}
METRICS_MODULE = Path(metrics.__file__).resolve()


def _name(node: ast.expr) -> str | None:
    return node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else None


def _calls(name: str) -> list[ast.Call]:
    """Every call of a function or method called `name` in the product's code, metrics.py aside."""
    found = []
    for path in [*(ROOT / "worker").rglob("*.py"), *(ROOT / "operator").rglob("*.py")]:
        if path.resolve() == METRICS_MODULE:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and _name(node.func) == name:
                found.append(node)
    return found


def test_there_are_metrics():
    assert len(COLLECTORS) >= 10 and all(name.startswith("phashfleet_") for name in COLLECTORS)


@pytest.mark.parametrize("name", sorted(COLLECTORS))
def test_no_label_is_the_scrape_job(name):
    """A `job` label collides with the scrape's own: without honor_labels it turns into exported_job."""
    labels = set(COLLECTORS[name]._labelnames)
    assert "job" not in labels, f"{name}: a PhashJob is labelled `phashjob`, never `job`"
    assert not labels & {"instance", "exported_job", "exported_namespace"}


#: Every metric about one PhashJob: the workers' and the operator's.
PER_JOB = {
    "phashfleet_files_processed",
    "phashfleet_file_failures",
    "phashfleet_bytes_read",
    "phashfleet_job_progress_ratio",
    "phashfleet_inflight_batches",
    "phashfleet_job_files",
    "phashfleet_status_writes",
}


def test_job_labels_are_namespace_and_phashjob():
    """Every per-job metric, worker or operator, names its PhashJob by `namespace` and `phashjob` (its
    name), first and in that order; no other metric has either label."""
    by_job = {name for name, c in COLLECTORS.items() if {"namespace", "phashjob"} & set(c._labelnames)}
    assert by_job == PER_JOB
    for name in PER_JOB:
        assert COLLECTORS[name]._labelnames[:2] == ("namespace", "phashjob"), name


@pytest.mark.parametrize(
    ("namespace", "name"), [("media", "holiday"), ("media", "holiday.2026"), ("local", "a.b.c"), ("n", "x")]
)
def test_job_ref_is_the_namespace_and_name_job_id_was_built_from(namespace, name):
    """keys.job_ref undoes reconcile.job_id (a name may hold dots, a namespace and the uid part never)."""
    assert keys.job_ref(job_id(namespace, name, "0a1b2c3d-4e5f-6789")) == (namespace, name)


@pytest.mark.parametrize("bad", ["", "media", "media.holiday", ".holiday.1", "media..1", "media.holiday."])
def test_job_ref_refuses_what_is_no_job_id(bad):
    with pytest.raises(ValueError, match="not <namespace>.<name>.<uid>"):
        keys.job_ref(bad)


def test_no_code_splits_a_job_id_but_job_ref():
    """The job id's layout is read in one place: no split/partition of a `job_id` outside keys.job_ref."""
    keys_module = Path(keys.__file__).resolve()
    found = []
    for path in [*(ROOT / "worker").rglob("*.py"), *(ROOT / "operator").rglob("*.py")]:
        if path.resolve() == keys_module:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (
                isinstance(node, ast.Call)
                and _name(node.func) in {"split", "rsplit", "partition", "rpartition"}
                and isinstance(node.func, ast.Attribute)
                and _name(node.func.value) in {"job_id", "jid"}
            ):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert found == [], "split job ids with phashfleet.state.keys.job_ref"


def test_batch_outcomes_in_the_help_are_the_ones_the_code_counts():
    """The help of phashfleet_batches_processed_total lists BATCH_OUTCOMES, and the code counts each, no other."""
    assert not [c for c in _calls("labels") if _name(c.func.value) == "BATCHES_PROCESSED"], (
        "count batches with metrics.count_batch, which only takes BATCH_OUTCOMES"
    )
    counted = {c.args[0].value for c in _calls("count_batch") if isinstance(c.args[0], ast.Constant)}
    assert all(isinstance(c.args[0], ast.Constant) for c in _calls("count_batch"))
    assert counted == set(metrics.BATCH_OUTCOMES)
    documentation = metrics.BATCHES_PROCESSED._documentation
    for outcome, meaning in metrics.BATCH_OUTCOMES.items():
        assert f"{outcome} ({meaning})" in documentation
    assert "requeued" not in documentation


def test_count_batch_refuses_an_outcome_the_help_does_not_name():
    with pytest.raises(ValueError, match="requeued"):
        metrics.count_batch("requeued")
