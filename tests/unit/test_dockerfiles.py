"""Dockerfile.operator and Dockerfile.worker: linted by hadolint and checkov, shaped as the chart expects,
and their install steps run for real into a fresh virtualenv."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import sysconfig
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

from chart.tools import require_tool

ROOT = Path(__file__).resolve().parents[2]
IMAGES = {"operator": ROOT / "Dockerfile.operator", "worker": ROOT / "Dockerfile.worker"}
PORTS = {"operator": {"8080", "8081"}, "worker": {"9191"}}
CHART_UID = yaml.safe_load((ROOT / "charts/phash-fleet/values.yaml").read_text())["podSecurityContext"]["runAsUser"]


def instructions(path: Path) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) of each instruction, continuation lines joined, comments dropped."""
    out, pending = [], ""
    for line in path.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        keyword, _, args = pending.strip().partition(" ")
        out.append((keyword.upper(), args.strip()))
        pending = ""
    return out


def stages(path: Path) -> list[list[tuple[str, str]]]:
    """Instructions grouped by build stage (each starting with its FROM)."""
    groups: list[list[tuple[str, str]]] = []
    for ins in instructions(path):
        if ins[0] == "FROM":
            groups.append([])
        if groups:
            groups[-1].append(ins)
    return groups


@pytest.mark.parametrize("image", IMAGES)
def test_shape(image):
    """Multi-stage on python:3.11-slim, deps in their own stage, non-root UID of the chart, the right entrypoint."""
    path = IMAGES[image]
    st = stages(path)
    assert len(st) >= 3, "deps, build and final stages"
    names = []
    for stage in st:
        base, _, alias = stage[0][1].partition(" AS ")
        assert base.startswith("python:3.11-slim") or base in names, f"unexpected base {base}"
        names.append(alias.strip())
    final = st[-1]
    assert final[0][1].startswith("python:3.11-slim"), "the final image starts again from the slim base"
    text = "\n".join(f"{k} {a}" for k, a in instructions(path))
    for banned in ("apt-get", "apk ", "gcc", "build-essential", "cc1"):
        assert banned not in text, f"{banned} in {path.name}: no compilers in any stage"
    for keyword, args in instructions(path):
        if keyword == "RUN" and ("pip install" in args or "pip wheel" in args):
            assert "--no-cache-dir" in args, f"pip without --no-cache-dir: {args}"
    final_keys = dict(final)
    assert final_keys["USER"] == f"{CHART_UID}:{CHART_UID}"
    assert any(f"--uid {CHART_UID}" in a for k, a in final if k == "RUN"), "a user with the chart's UID"
    assert json.loads(final_keys["ENTRYPOINT"]) == ["phashfleet", image]
    assert set(final_keys["EXPOSE"].split()) == PORTS[image]
    assert "HEALTHCHECK" in final_keys
    assert any(k == "COPY" and a.startswith("--from=deps /opt/venv") for k, a in final), "deps layer copied whole"
    assert "PIP_NO_CACHE_DIR=1" in final_keys["ENV"]
    assert [k for k, _ in final].index("USER") > max(i for i, (k, _) in enumerate(final) if k in ("RUN", "COPY"))


def test_dockerignore_keeps_the_context_to_the_sources():
    """Only pyproject.toml, README.md, worker/, operator/ and the CRD the wheel ships go into the build context."""
    lines = [line for line in (ROOT / ".dockerignore").read_text().splitlines() if line and not line.startswith("#")]
    assert lines[0] == "*"
    sources = {"pyproject.toml", "README.md", "worker/", "operator/", "crds/phashjobs.phashfleet.io.yaml"}
    assert {line[1:] for line in lines if line.startswith("!")} == sources
    copied = {a.split()[0] for p in IMAGES.values() for k, a in instructions(p) if k == "COPY" and "--from" not in a}
    assert copied <= sources


def test_hadolint_finds_nothing(tmp_path):
    """hadolint, every rule at every level: no findings (and it does find them in a bad Dockerfile)."""
    hadolint = require_tool("hadolint")
    proc = subprocess.run(
        [hadolint, "--format", "json", *map(str, IMAGES.values())], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0 and json.loads(proc.stdout or "[]") == [], proc.stdout + proc.stderr
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN pip install requests\n")
    found = subprocess.run([hadolint, "--format", "json", str(bad)], capture_output=True, text=True, timeout=60)
    assert {f["code"] for f in json.loads(found.stdout)} >= {"DL3006", "DL3013"}


def test_checkov_passes():
    """checkov's dockerfile checks all pass for both images (one run, nothing downloaded)."""
    checkov = require_tool("checkov")
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_PARALLELIZATION_TYPE": "none"}
    args = [checkov, "--framework", "dockerfile", "--quiet", "--compact", "--skip-download", "-o", "json"]
    for path in IMAGES.values():
        args += ["-f", str(path)]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
    reports = json.loads(proc.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    failed = [c["check_id"] for r in reports for c in r["results"]["failed_checks"]]
    assert failed == [] and proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert sum(r["summary"]["passed"] for r in reports) > 0


def _run_steps(path: Path, workdir: Path, venv: Path, wheels: Path, done: set[str]) -> Path:
    """Run the RUN lines of the deps and build stages the way the image build does, paths moved to workdir.

    Returns the requirements file the deps stage wrote. A command already run for the other
    Dockerfile (the wheel build is the same) is not run twice.
    """
    requirements = workdir / f"{path.name}.requirements.txt"
    args = {}
    for stage in stages(path)[:-1]:
        for keyword, line in stage:
            if keyword == "ARG" and "=" in line:
                key, _, value = line.partition("=")
                args[key] = value
            if keyword != "RUN":
                continue
            command = (
                line.replace("/opt/venv", str(venv))
                .replace("/tmp/requirements.txt", str(requirements))
                .replace("/wheels", str(wheels))
            )
            for key, value in args.items():
                command = command.replace(f"${{{key}}}", value)
            # The image's interpreter is python:3.11's; here the one running the tests (also 3.11+).
            command = re.sub(r"(^|&& )python ", rf"\1{shlex.quote(sys.executable)} ", command)
            # The dependency download is left out: the tested environment stands in for it (see below).
            # pip's cache is allowed here (a speed-up only): the build backend is then fetched once per machine.
            parts = [
                p.replace(" --no-cache-dir", "")
                for p in command.split(" && ")
                if not ("pip install" in p and "-r " in p)
            ]
            todo = [p for p in parts if p not in done]
            done.update(todo)
            if todo:
                subprocess.run(
                    ["bash", "-euo", "pipefail", "-c", " && ".join(todo)],
                    cwd=workdir,
                    check=True,
                    timeout=600,
                    capture_output=True,
                    text=True,
                )
    return requirements


def _unmet(requirements_file: Path) -> list[str]:
    """Requirements the tested environment does not satisfy."""
    unmet = []
    for line in requirements_file.read_text().split("\n"):
        if not line.strip():
            continue
        req = Requirement(line)
        try:
            version = metadata.version(req.name)
        except metadata.PackageNotFoundError:
            unmet.append(f"{req} (not installed)")
            continue
        if version not in req.specifier:
            unmet.append(f"{req} (have {version})")
    return unmet


def test_install_steps_work_in_a_fresh_venv(tmp_path):
    """Both Dockerfiles' own steps: requirements from pyproject, wheel build, wheel install, `phashfleet --help`.

    Downloading every dependency would take minutes (and a fresh resolve of s3fs/aiobotocore
    backtracks for long), so the fresh venv gets the tested environment's site-packages as its
    dependency source (a plain .pth line), after checking that every requirement the images would
    install is satisfied there; the project itself comes only from the built wheel.
    """
    workdir, venv, wheels = tmp_path / "src", tmp_path / "venv", tmp_path / "wheels"
    workdir.mkdir()
    for name in ("pyproject.toml", "README.md", "crds/phashjobs.phashfleet.io.yaml"):
        (workdir / name).parent.mkdir(exist_ok=True)
        (workdir / name).write_bytes((ROOT / name).read_bytes())
    for folder in ("worker", "operator"):
        subprocess.run(["cp", "-r", str(ROOT / folder), str(workdir / folder)], check=True)
    done: set[str] = set()
    for image, path in IMAGES.items():
        requirements = _run_steps(path, workdir, venv, wheels, done)
        names = {Requirement(line).name for line in requirements.read_text().split("\n") if line.strip()}
        assert {"dramatiq", "kopf", "s3fs"} <= names, f"{image}: {sorted(names)}"
        assert _unmet(requirements) == [], f"{image} would install versions the tests never ran with"

    built = list(wheels.glob("phash_fleet-*.whl"))
    assert len(built) == 1
    fresh = tmp_path / "fresh"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(fresh)], check=True, timeout=120)
    python = str(fresh / "bin" / "python")
    site = Path(
        subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    (site / "zz-tested-deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    # The final stage's `pip install --no-deps WHEEL`, by this environment's pip aimed at the fresh venv.
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            python,
            "install",
            "--no-cache-dir",
            "--no-deps",
            "--no-index",
            str(built[0]),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    where = subprocess.run(
        [python, "-c", "import phashfleet, phashfleet_operator as o; print(phashfleet.__file__); print(o.__file__)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert all(p.startswith(str(fresh)) for p in where), f"imported from outside the fresh venv: {where}"
    # The spec's fields and defaults come from the CRD the wheel carries.
    parsed = subprocess.run(
        [
            python,
            "-c",
            "from phashfleet.job.spec import _crd_path, parse_spec; "
            "print(_crd_path()); print(parse_spec({'source': {'uri': '/d'}}).hash_size)",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert parsed[0].startswith(str(fresh)) and parsed[1] == "8", parsed
    for args in ((), ("operator",), ("worker",)):
        out = subprocess.run(
            [str(fresh / "bin" / "phashfleet"), *args, "--help"], capture_output=True, text=True, timeout=120
        )
        assert out.returncode == 0, out.stderr
        assert "Usage: phashfleet" in out.stdout
