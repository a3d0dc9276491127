"""What the node changes on the host, and how it puts it back: bridge, route, sysctls, firewall chains, mounts."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

BRIDGE = "pfleet0"
NODE_IP = "198.18.0.1"
POD_CIDR = "198.18.0.0/16"
NODE_POD_CIDR = "198.18.0.0/24"
SERVICE_CIDR = "198.19.0.0/16"
API_SERVICE_IP = "198.19.0.1"
DNS_SERVICE_IP = "198.19.0.10"

#: Kernel settings the kubelet or the CNI bridge plugin change; recorded before and restored after.
SYSCTLS = (
    "net.ipv4.ip_forward",
    "net.bridge.bridge-nf-call-iptables",
    "vm.overcommit_memory",
    "kernel.panic",
    "kernel.panic_on_oops",
)
#: Fixed host folders the kubelet, containerd's shims or the CNI plugins create whatever their config says.
FIXED_FOLDERS = (
    "/run/containerd/s",
    "/run/containerd/fifo",
    "/run/containerd/runc",
    "/run/containerd",
    "/var/lib/cni",
    "/var/lib/kubelet",
    "/var/log/containers",
    "/var/log/pods",
    "/etc/cni",
    "/opt/cni",
)


def run(*cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run a host command, text in and out."""
    return subprocess.run(cmd, capture_output=True, text=True, check=check)


def _sysctl_path(name: str) -> Path:
    return Path("/proc/sys") / name.replace(".", "/")


@dataclass
class HostRecord:
    """What the host looked like before the node started, kept in a file so `down` from any process restores it."""

    sysctls: dict[str, str]
    folders: list[str]  # FIXED_FOLDERS that did not exist yet (the node removes them again)

    @classmethod
    def take(cls) -> HostRecord:
        """Record the host's current settings."""
        values = {n: _sysctl_path(n).read_text().strip() for n in SYSCTLS if _sysctl_path(n).exists()}
        return cls(values, [f for f in FIXED_FOLDERS if not os.path.exists(f)])

    def save(self, path: Path) -> None:
        """Write the record (never overwrite an earlier one: that one holds the host's true state)."""
        if not path.exists():
            path.write_text(json.dumps({"sysctls": self.sysctls, "folders": self.folders}))

    @classmethod
    def load(cls, path: Path) -> HostRecord | None:
        """Read a saved record, or None."""
        if not path.exists():
            return None
        data = json.loads(path.read_text())
        return cls(data["sysctls"], data["folders"])

    def restore(self) -> None:
        """Put the recorded sysctls back and remove the fixed folders the node created."""
        for name, value in self.sysctls.items():
            path = _sysctl_path(name)
            if path.exists() and path.read_text().strip() != value:
                path.write_text(value)
        for folder in self.folders:
            shutil.rmtree(folder, ignore_errors=True)


def set_sysctl(name: str, value: str) -> None:
    """Set one kernel setting."""
    _sysctl_path(name).write_text(value)


def bridge_up() -> None:
    """Create the node's bridge with the node address and a route for the Service range through it."""
    if run("ip", "link", "show", BRIDGE, check=False).returncode != 0:
        run("ip", "link", "add", BRIDGE, "type", "bridge")
    if NODE_IP not in run("ip", "-4", "addr", "show", BRIDGE).stdout:
        run("ip", "addr", "add", f"{NODE_IP}/24", "dev", BRIDGE)
    run("ip", "link", "set", BRIDGE, "up")
    run("ip", "route", "replace", SERVICE_CIDR, "dev", BRIDGE, "src", NODE_IP)


def bridge_down() -> None:
    """Delete the bridge (its address and route go with it) and any pod veth left on it."""
    listed = run("ip", "-o", "link", "show", "master", BRIDGE, check=False).stdout
    for veth in re.findall(r"^\d+:\s+([^@:\s]+)", listed, re.M):
        run("ip", "link", "delete", veth, check=False)
    run("ip", "link", "delete", BRIDGE, check=False)


def remove_kube_chains() -> None:
    """Remove every KUBE-* chain and the jumps to them, in every table, IPv4 and IPv6; nothing else is touched."""
    for tool in ("iptables", "ip6tables"):
        if not shutil.which(tool):
            continue
        for table in ("filter", "nat", "mangle", "raw"):
            listed = run(tool, "-w", "-t", table, "-S", check=False).stdout.splitlines()
            for rule in listed:
                if rule.startswith("-A ") and re.search(r"-j KUBE-", rule) and not rule.split()[1].startswith("KUBE-"):
                    run(tool, "-w", "-t", table, *_delete_args(rule), check=False)
            chains = [line.split()[1] for line in listed if line.startswith("-N KUBE-")]
            for chain in chains:
                run(tool, "-w", "-t", table, "-F", chain, check=False)
            for chain in chains:
                run(tool, "-w", "-t", table, "-X", chain, check=False)


def _delete_args(rule: str) -> list[str]:
    import shlex

    return ["-D", *shlex.split(rule)[1:]]


def kube_chains() -> list[str]:
    """The KUBE-* chains present now (table:chain), for the leave-nothing check."""
    found = []
    for tool in ("iptables", "ip6tables"):
        if not shutil.which(tool):
            continue
        for table in ("filter", "nat", "mangle", "raw"):
            found += [
                f"{tool}:{table}:{line.split()[1]}"
                for line in run(tool, "-w", "-t", table, "-S", check=False).stdout.splitlines()
                if line.startswith("-N KUBE-")
            ]
    return found


def mounts_under(*prefixes: str) -> list[str]:
    """Mount points at or under any of the prefixes, deepest first."""
    points = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        point = line.split()[1].encode().decode("unicode_escape")
        if any(point == p or point.startswith(p.rstrip("/") + "/") for p in prefixes):
            points.append(point)
    return sorted(set(points), key=len, reverse=True)


def unmount_under(*prefixes: str) -> None:
    """Unmount everything at or under the prefixes (lazily for busy ones), deepest first."""
    for _ in range(3):
        points = mounts_under(*prefixes)
        if not points:
            return
        for point in points:
            if run("umount", point, check=False).returncode != 0:
                run("umount", "-l", point, check=False)


def remove_cgroups(name: str = "kubepods") -> None:
    """Remove the kubelet's cgroup folders (each v1 controller and the unified tree), leaves first."""
    for top in Path("/sys/fs/cgroup").glob("**/" + name):
        if not top.is_dir():
            continue
        for folder in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):
                folder.rmdir()
        with contextlib.suppress(OSError):
            top.rmdir()


def snapshot() -> dict:
    """What a stopped node must leave as it found it: links, routes, KUBE chains, sysctls, fixed folders, mounts."""
    return {
        "links": sorted(re.findall(r"^\d+:\s+([^@:\s]+)", run("ip", "-o", "link").stdout, re.M)),
        "routes": sorted(run("ip", "route").stdout.splitlines()),
        "kube_chains": kube_chains(),
        "sysctls": {n: _sysctl_path(n).read_text().strip() for n in SYSCTLS if _sysctl_path(n).exists()},
        "folders": [f for f in FIXED_FOLDERS if os.path.exists(f)],
        "mounts": sorted(line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()),
    }
