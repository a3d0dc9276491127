"""The README's "Install on a cluster" on the node `scripts/cluster up` starts, with Helm 4 as a person runs it."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

from chart.render import CHART
from chart.tools import REPO, require_tool
from harness.wait import wait_for

NAMESPACE = "phash-fleet"


def _exports(output: str) -> dict[str, str]:
    return dict(re.findall(r"^export (\w+)=(.+)$", output, re.M))


def test_cluster_up_prints_what_a_shell_needs(node):
    exports = _exports(node.up_output)
    assert list(exports) == ["KUBECONFIG", "PHASHFLEET_LOCAL_VALUES"], node.up_output
    assert Path(exports["KUBECONFIG"]).is_file() and Path(exports["PHASHFLEET_LOCAL_VALUES"]).is_file()


def test_readme_install_runs_the_example_job_to_succeeded(node):
    exports = _exports(node.up_output)
    env = {**os.environ, **exports}
    kubectl = str(node.plane.kubectl_path)

    def run(*cmd: str) -> subprocess.CompletedProcess:
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=400, cwd=REPO)
        assert done.returncode == 0, f"{' '.join(cmd)}:\n{done.stdout}\n{done.stderr}"
        return done

    helm4 = require_tool("helm4")
    run(
        helm4,
        "install",
        "phash-fleet",
        str(CHART),
        "-n",
        NAMESPACE,
        "--create-namespace",
        "-f",
        exports["PHASHFLEET_LOCAL_VALUES"],
        "--wait",
        "--timeout=5m",
    )
    try:
        run(kubectl, "-n", NAMESPACE, "apply", "-f", "examples/phashjob.yaml")
        status = wait_for(
            lambda: (
                (
                    s := json.loads(
                        run(kubectl, "-n", NAMESPACE, "get", "phj", "holiday-photos", "-o", "json").stdout
                    ).get("status", {})
                ).get("phase")
                in ("Succeeded", "Failed")
                and s
            ),
            timeout=300,
            interval=0.5,
            what="holiday-photos to end",
        )
        photos = sorted(p.name for p in (REPO / "examples" / "photos").iterdir())
        assert status["phase"] == "Succeeded" and status["total"] == len(photos), status
        results = node.dir / "data" / "results" / "holiday-photos.jsonl"
        assert len(results.read_text().splitlines()) == len(photos)
        run(helm4, "test", "phash-fleet", "-n", NAMESPACE)
    finally:
        subprocess.run(
            [helm4, "uninstall", "phash-fleet", "-n", NAMESPACE, "--wait"], env=env, timeout=300, capture_output=True
        )
