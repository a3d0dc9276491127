"""`phashfleet run`: a manifest is checked as the apiserver checks it, and the job ends as it truly went."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from harness.synthetic import photo_like
from phashfleet.cli import main


def _manifest(folder: Path, **spec) -> Path:
    path = folder / "job.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "phashfleet.io/v1alpha1",
                "kind": "PhashJob",
                "metadata": {"name": "local"},
                "spec": {"source": {"uri": f"file://{folder / 'photos'}"}, **spec},
            }
        )
    )
    return path


def _run(manifest: Path):
    result = CliRunner().invoke(main, ["run", str(manifest), "--jobs", "1"])
    return result, (json.loads(result.stdout) if result.exit_code in (0, 1) else None)


def _condition(status: dict) -> dict:
    (true,) = [c for c in status["conditions"] if c["status"] == "True"]
    return true


@pytest.fixture
def photos(tmp_path) -> Path:
    (tmp_path / "photos").mkdir()
    for i in range(2):
        photo_like(120, 90, seed=i).save(tmp_path / "photos" / f"p{i}.png")
    return tmp_path


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"algorithm": "whash", "hashSize": 12}, "spec.hashSize"),
        ({"algoritm": "dhash"}, "spec.algoritm"),
    ],
)
def test_a_manifest_the_apiserver_would_refuse_is_refused_naming_the_field(photos, spec, field):
    result, _ = _run(_manifest(photos, **spec))
    assert result.exit_code == 2, result.output
    assert f"{field}:" in result.output and "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_a_job_whose_every_file_fails_ends_failed(tmp_path):
    (tmp_path / "photos").mkdir()
    for i in range(3):
        (tmp_path / "photos" / f"broken{i}.jpg").write_bytes(b"\xff\xd8 broken")
    result, status = _run(_manifest(tmp_path))
    assert result.exit_code == 1, result.output
    assert status["phase"] == "Failed" and (status["total"], status["failed"]) == (3, 3)
    assert _condition(status)["type"] == "Failed" and _condition(status)["reason"] == "AllFilesFailed"


def test_a_suspended_job_says_suspended_and_hashes_nothing(photos):
    output = photos / "out.jsonl"
    result, status = _run(_manifest(photos, suspend=True, output={"uri": str(output)}))
    assert result.exit_code == 0, result.output
    assert status["phase"] == "Suspended" and (status["total"], status["succeeded"]) == (2, 0)
    assert _condition(status)["type"] == "Suspended" and "completionTime" not in status
    assert not output.exists()


def test_a_good_job_and_an_empty_one_succeed(photos):
    result, status = _run(_manifest(photos))
    assert result.exit_code == 0 and status["phase"] == "Succeeded" and status["succeeded"] == 2
    assert _condition(status)["reason"] == "Completed"
    (photos / "photos" / "p0.png").unlink()
    (photos / "photos" / "p1.png").unlink()
    result, status = _run(_manifest(photos))
    assert result.exit_code == 0 and status["phase"] == "Succeeded" and _condition(status)["reason"] == "NoFiles"


def test_a_cronjob_manifest_is_refused_saying_the_operator_schedules_it():
    example = Path(__file__).resolve().parents[2] / "examples" / "phashcronjob.yaml"
    result, _ = _run(example)
    assert result.exit_code == 2, result.output
    assert "is a PhashCronJob" in result.output and "Traceback" not in result.output
