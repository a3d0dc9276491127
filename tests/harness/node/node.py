"""The node: containerd, etcd, kube-apiserver, controller-manager, scheduler, kubelet, kube-proxy and CoreDNS.

`Node(state_dir).up()` starts everything as host processes on the node's own bridge and returns once
the node is Ready and Service names resolve; `Node(state_dir).down()` (from any process: it works
from the pid files) stops it and puts the host back as it was. One node runs at a time on a machine:
`/run/phash-fleet-node.json` names the running one's state folder.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from harness import tools
from harness.controlplane import ControlPlane
from harness.node import addons, configs, host, images
from harness.node.host import API_SERVICE_IP, NODE_IP, POD_CIDR, SERVICE_CIDR
from harness.node.keda import front_proxy_args
from harness.ports import free_port
from harness.process import ManagedProcess
from harness.wait import wait_for

RUNNING = Path("/run/phash-fleet-node.json")
API_PORT = 6443
#: containerd's content store and snapshots outlive a node, so imported images are reused; state does not.
CONTAINERD_ROOT = tools.CACHE / "containerd"


class NodeBusy(RuntimeError):
    """Another node is running on this machine."""


class Node:
    """One single-node cluster whose files live in `state_dir`."""

    def __init__(self, state_dir: Path, log: Callable[[str], None] = lambda m: print(m, file=sys.stderr, flush=True)):
        self.dir = state_dir.resolve()
        self.log = log
        self.socket = self.dir / "containerd" / "containerd.sock"
        self.kubeconfig = self.dir / "cluster" / "kubeconfig"
        self.values_file = self.dir / "local-values.yaml"
        self.volumes = self.dir / "volumes"  # the provisioner's claims
        self.data = self.dir / "data"  # hostPath source and output folders of the local values
        self._plane: ControlPlane | None = None

    @property
    def images(self) -> dict[str, images.Image]:
        """The images loaded into this node's containerd (written by `up`)."""
        path = self.dir / "images.json"
        if not path.exists():
            return {}
        return {key: images.Image(**fields) for key, fields in json.loads(path.read_text()).items()}

    @property
    def plane(self) -> ControlPlane:
        """The node's control plane: kubectl, apply and get_json as the cluster admin."""
        if self._plane is None:
            self._plane = ControlPlane(
                self.dir / "cluster",
                address=NODE_IP,
                port=API_PORT,
                service_cidr=SERVICE_CIDR,
                extra_hosts=(API_SERVICE_IP,),
                authorization="Node,RBAC",
                extra_args=(),
            )
        return self._plane

    # --- up ----------------------------------------------------------------------------------------
    def up(self) -> Node:
        """Build what is missing, start every component, wait until the node is Ready and DNS answers."""
        if os.geteuid() != 0:
            raise PermissionError("the node needs root (containerd, kubelet and kube-proxy manage the host)")
        self._claim_machine()
        started = time.monotonic()
        try:
            self._up(started)
        except BaseException:
            self.log(f"node start failed; logs are in {self.dir / 'logs'}")
            self.down()
            raise
        return self

    def _up(self, started: float) -> None:
        for name in ("kubelet", "kube-scheduler", "kube-controller-manager", "kube-proxy", "kubectl", "kube-apiserver"):
            tools.find(name)
        built = images.build_images(log=self.log)
        (self.dir / "images.json").write_text(
            json.dumps({k: dataclasses.asdict(v) for k, v in built.items()}, default=str)
        )
        self._step(started, "images built")
        host.HostRecord.take().save(self.dir / "host-record.json")
        host.bridge_up()
        host.set_sysctl("net.ipv4.ip_forward", "1")
        host.set_sysctl("net.bridge.bridge-nf-call-iptables", "1")
        self._start_containerd()
        images.import_images(str(self.socket), self.images.values())
        self._step(started, "containerd up, images imported")
        self._start_control_plane()
        self._step(started, "apiserver ready")
        self._start_node_components()
        wait_for(
            lambda: self.plane.kubectl("get", "node", configs.NODE_NAME, check=False).returncode == 0,
            timeout=60,
            what="the kubelet to register the node",
        )
        self.plane.kubectl("wait", "--for=condition=Ready", f"node/{configs.NODE_NAME}", "--timeout=120s", timeout=130)
        self._step(started, "node Ready")
        self.plane.apply("---\n".join(yaml.safe_dump(o) for o in addons.everything(self.images["coredns"].name)))
        self.plane.kubectl(
            "-n", "kube-system", "rollout", "status", "deployment/coredns", "--timeout=180s", timeout=190
        )
        wait_for(
            lambda: self.plane.kubectl("get", "serviceaccount", "default", check=False).returncode == 0,
            timeout=60,
            what="the default ServiceAccount",
        )
        self._step(started, "CoreDNS ready")
        self._write_local_values()

    def _step(self, started: float, what: str) -> None:
        self.log(f"[{time.monotonic() - started:6.1f}s] {what}")

    def _claim_machine(self) -> None:
        """Refuse while another node runs; clean up after one that died without `down`."""
        if RUNNING.exists():
            other = Path(json.loads(RUNNING.read_text())["dir"])
            if Node(other).alive():
                raise NodeBusy(f"a node is already running from {other} (scripts/cluster down stops it)")
            self.log(f"cleaning up after a node that did not stop: {other}")
            Node(other, self.log).down()
        self.dir.mkdir(parents=True, exist_ok=True)
        RUNNING.write_text(json.dumps({"dir": str(self.dir)}))

    def _start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> ManagedProcess:
        proc = ManagedProcess(name, argv, self.dir / "logs" / f"{name}.log", env=env)
        proc.start()
        self._remember(name, proc.pid)
        return proc

    def _remember(self, name: str, pid: int) -> None:
        pids = self._pids()
        pids[name] = pid
        (self.dir / "pids.json").write_text(json.dumps(pids))

    def _pids(self) -> dict[str, int]:
        path = self.dir / "pids.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def _start_containerd(self) -> None:
        state = self.dir / "containerd"
        cni = self.dir / "cni"
        cni.mkdir(parents=True, exist_ok=True)
        (cni / "10-phash-fleet.conflist").write_text(configs.cni_config(self.dir / "cni-ipam"))
        config = self.dir / "containerd.toml"
        config.write_text(
            configs.containerd_config(
                root=CONTAINERD_ROOT,
                state=state / "state",
                socket=self.socket,
                cni_conf_dir=cni,
                sandbox_image=self.images["pause"].name,
            )
        )
        proc = self._start("containerd", ["containerd", "--config", str(config)])
        wait_for(
            lambda: self._ctr("version").returncode == 0 or (not proc.alive and _raise(proc)),
            timeout=30,
            what="containerd",
        )

    def _ctr(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["ctr", "--address", str(self.socket), "-n", "k8s.io", *args], capture_output=True, text=True, timeout=60
        )

    def _start_control_plane(self) -> None:
        plane = self.plane
        ca = plane.start_certificates()
        kubelet_client = ca.issue("apiserver-kubelet-client", "kube-apiserver-kubelet-client", org="system:masters")
        plane.extra_args = (
            f"--kubelet-client-certificate={kubelet_client.cert}",
            f"--kubelet-client-key={kubelet_client.key}",
            "--kubelet-preferred-address-types=InternalIP",
            # API aggregation (KEDA's external metrics): the apiserver dials the endpoint itself.
            *front_proxy_args(ca),
            "--enable-aggregator-routing=true",
        )
        plane.start_servers()
        for proc in (plane.etcd, plane.apiserver):
            self._remember(proc.name, proc.pid)
        (self.dir / "etcd-data").write_text(str(plane.etcd_data))

    def _start_node_components(self) -> None:
        plane, kubectl = self.plane, str(tools.find("kubectl"))
        node_cert = plane.authority.issue("kubelet-client", f"system:node:{configs.NODE_NAME}", org="system:nodes")
        kubelet_kubeconfig = plane.write_kubeconfig(
            self.dir / "kubelet.kubeconfig",
            user={"client-certificate": str(node_cert.cert), "client-key": str(node_cert.key)},
        )
        admin = str(self.kubeconfig)
        self._start(
            "kube-controller-manager",
            [
                str(tools.find("kube-controller-manager")),
                f"--kubeconfig={admin}",
                f"--authentication-kubeconfig={admin}",
                f"--authorization-kubeconfig={admin}",
                "--leader-elect=false",
                "--use-service-account-credentials=true",
                f"--service-account-private-key-file={plane.service_account.key}",
                f"--root-ca-file={plane.ca.cert}",
                "--allocate-node-cidrs=true",
                f"--cluster-cidr={POD_CIDR}",
                "--node-cidr-mask-size=24",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--horizontal-pod-autoscaler-sync-period=5s",
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
                "--v=1",
            ],
        )
        self._start(
            "kube-scheduler",
            [
                str(tools.find("kube-scheduler")),
                f"--kubeconfig={admin}",
                f"--authentication-kubeconfig={admin}",
                f"--authorization-kubeconfig={admin}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
                "--v=1",
            ],
        )
        resolv = self.dir / "resolv.conf"
        resolv.write_text("# the node resolves cluster names only (CoreDNS has no upstream)\n")
        kubelet_config = self.dir / "kubelet.yaml"
        kubelet_config.write_text(
            configs.kubelet_config(
                ca=plane.ca.cert,
                socket=self.socket,
                resolv_conf=resolv,
                pod_logs=self.dir / "pod-logs",
                healthz_port=free_port(),
            )
        )
        self._start(
            "kubelet",
            [
                str(tools.find("kubelet")),
                f"--config={kubelet_config}",
                f"--kubeconfig={kubelet_kubeconfig}",
                f"--root-dir={self.dir / 'kubelet'}",
                f"--cert-dir={self.dir / 'kubelet-pki'}",
                f"--node-ip={NODE_IP}",
                f"--hostname-override={configs.NODE_NAME}",
                "--v=1",
            ],
        )
        proxy_config = self.dir / "kube-proxy.yaml"
        proxy_config.write_text(
            configs.kube_proxy_config(kubeconfig=self.kubeconfig, healthz_port=free_port(), metrics_port=free_port())
        )
        self._start("kube-proxy", [str(tools.find("kube-proxy")), f"--config={proxy_config}", "--v=1"])
        self._start(
            "provisioner",
            [sys.executable, "-m", "harness.node.provisioner", kubectl, admin, str(self.volumes)],
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
        )

    def _write_local_values(self) -> None:
        """The values a person adds to `helm install` to use the local images and a hostPath for /data."""
        photos = self.data / "photos"
        results = self.data / "results"
        results.mkdir(parents=True, exist_ok=True)
        results.chmod(0o777)  # the operator (UID 10001) writes job results here
        if not photos.exists():
            shutil.copytree(tools.ROOT / "examples" / "photos", photos)
        values = images.chart_values(self.images)
        values["source"] = {
            "volumes": [
                {"name": "photos", "mountPath": "/data/photos", "hostPath": {"path": str(photos), "type": "Directory"}}
            ]
        }
        values["output"] = {
            "volumes": [
                {
                    "name": "results",
                    "mountPath": "/data/results",
                    "hostPath": {"path": str(results), "type": "Directory"},
                }
            ]
        }
        self.values_file.write_text(
            "# Written by scripts/cluster up: local images, and /data on this machine.\n" + yaml.safe_dump(values)
        )

    # --- state -------------------------------------------------------------------------------------
    def alive(self) -> bool:
        """True while any process of this node runs."""
        return any(_alive(pid) for pid in self._pids().values())

    def status(self) -> dict[str, bool]:
        """Which of the node's processes run."""
        return {name: _alive(pid) for name, pid in self._pids().items()}

    def kill_container(self, container_id: str) -> None:
        """SIGKILL a running container from the host, as the kernel's OOM killer or a crash would end it."""
        done = self._ctr("tasks", "kill", "--signal", "SIGKILL", container_id.removeprefix("containerd://"))
        if done.returncode != 0:
            raise RuntimeError(f"ctr tasks kill failed: {done.stderr}")

    # --- down --------------------------------------------------------------------------------------
    def down(self, *, remove_state: bool = False, keep_logs: bool = False) -> None:
        """Stop every process and container, and put the host back: bridge, chains, sysctls, mounts, folders."""
        pids = self._pids()
        for name in ("provisioner", "kube-proxy", "kube-scheduler", "kube-controller-manager", "kubelet"):
            _stop(pids.get(name))
        if pids.get("containerd") and _alive(pids["containerd"]):
            self._remove_containers()
        _stop(pids.get("containerd"))
        self._kill_shims()
        for name in ("kube-apiserver", "etcd"):
            _stop(pids.get(name))
        proxy_config = self.dir / "kube-proxy.yaml"
        if proxy_config.exists():
            subprocess.run(
                [str(tools.find("kube-proxy", build=False)), "--cleanup", f"--config={proxy_config}"],
                capture_output=True,
                timeout=60,
            )
        host.remove_kube_chains()
        host.unmount_under(str(self.dir), str(CONTAINERD_ROOT), "/run/containerd", "/var/lib/kubelet")
        host.bridge_down()
        host.remove_cgroups()
        record = host.HostRecord.load(self.dir / "host-record.json")
        if record:
            record.restore()
            (self.dir / "host-record.json").unlink()
        etcd_data = self.dir / "etcd-data"
        if etcd_data.exists():
            shutil.rmtree(etcd_data.read_text(), ignore_errors=True)
            etcd_data.unlink()
        shutil.rmtree(self.dir / "containerd", ignore_errors=True)
        (self.dir / "pids.json").unlink(missing_ok=True)
        if remove_state:
            for entry in self.dir.iterdir() if self.dir.exists() else ():
                if not (keep_logs and entry.name == "logs"):
                    shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink()
            if not keep_logs:
                self.dir.rmdir()
        if RUNNING.exists() and json.loads(RUNNING.read_text()).get("dir") == str(self.dir):
            RUNNING.unlink()

    def _remove_containers(self) -> None:
        """Kill and remove every container and sandbox, so containerd's metadata holds no pod of this node."""
        ids = self._ctr("containers", "list", "-q").stdout.split()
        for cid in ids:
            self._ctr("tasks", "kill", "--signal", "SIGKILL", cid)
        for cid in ids:
            self._ctr("tasks", "delete", "--force", cid)
            self._ctr("containers", "delete", cid)

    def _kill_shims(self) -> None:
        """containerd's shims outlive it: kill the ones serving this node's socket."""
        marker = str(self.socket).encode()
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                cmdline = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if b"containerd-shim" in cmdline and marker in cmdline:
                _stop(int(proc.name), timeout=5)


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is not alive
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return False


def _stop(pid: int | None, timeout: float = 20) -> None:
    """SIGTERM the process group, wait up to `timeout`, then SIGKILL it."""
    if not _alive(pid):
        return
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5)):
        try:
            os.killpg(pid, sig)
        except (ProcessLookupError, PermissionError):  # not a group leader (a shim): the process alone
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not _alive(pid):
                return
            time.sleep(0.1)


def _raise(proc: ManagedProcess) -> bool:
    raise RuntimeError(f"{proc.name} exited:\n{proc.log_tail()}")
