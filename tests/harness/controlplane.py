"""A real Kubernetes control plane for tests: etcd + kube-apiserver with TLS, client certs and RBAC.

On its own (loopback) there is no kubelet and no controller-manager: Deployments are "run" by the
harness's pod runner, and nothing garbage-collects. `harness.node` starts it on the node's bridge
address and adds the rest of a real cluster around it.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import urllib.request
from pathlib import Path

import yaml

from harness import tools
from harness.pki import CertificateAuthority, service_account_keys
from harness.ports import free_port
from harness.process import ManagedProcess
from harness.wait import wait_for

SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"


class ControlPlane:
    """etcd and kube-apiserver on free loopback ports, plus an admin kubeconfig for everything else."""

    def __init__(
        self,
        workdir: Path,
        *,
        address: str = "127.0.0.1",
        port: int | None = None,
        service_cidr: str = "10.96.0.0/16",
        extra_hosts: tuple[str, ...] = (),
        authorization: str = "RBAC",
        extra_args: tuple[str, ...] = ("--endpoint-reconciler-type=none",),
    ) -> None:
        self.workdir = workdir
        self.pki = workdir / "pki"
        self.kubeconfig = workdir / "kubeconfig"
        self.etcd_port = free_port()
        self.etcd_peer_port = free_port()
        self.address = address
        self.port = port or free_port()
        self.service_cidr = service_cidr
        self.extra_hosts = extra_hosts
        self.extra_args = extra_args
        self.authorization = authorization
        self.server = f"https://{address}:{self.port}"
        self.etcd: ManagedProcess | None = None
        self.apiserver: ManagedProcess | None = None
        self.kubectl_path = tools.find("kubectl")

    # --- lifecycle -----------------------------------------------------------------------------
    def start(self) -> ControlPlane:
        """Generate certificates, start etcd and the apiserver, wait until ready, write the kubeconfig."""
        self.start_certificates()
        return self.start_servers()

    def start_certificates(self) -> CertificateAuthority:
        """Make the CA, the serving, admin and service-account keys; return the CA to sign more with."""
        ca = self.authority = CertificateAuthority(self.pki)
        self.ca = ca.pair
        self.serving = ca.issue(
            "apiserver",
            "kube-apiserver",
            server=True,
            hosts=(
                self.address,
                "127.0.0.1",
                "localhost",
                *self.extra_hosts,
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ),
        )
        self.admin = ca.issue("admin", "phashfleet-test-admin", org="system:masters")
        self.service_account = service_account_keys(self.pki)
        return ca

    def start_servers(self) -> ControlPlane:
        """Start etcd and the apiserver (after start_certificates), wait until ready, write the kubeconfig."""
        sa, serving = self.service_account, self.serving
        # etcd's data lives in memory-backed /dev/shm when there is one: it makes the apiserver snappier.
        shm = Path("/dev/shm")
        data_root = Path(os.environ.get("PHASHFLEET_ETCD_DIR", shm if shm.is_dir() else self.workdir))
        self.etcd_data = data_root / f"phashfleet-etcd-{os.getpid()}-{self.port}"
        self.etcd = ManagedProcess(
            "etcd",
            [
                str(tools.find("etcd")),
                "--name",
                "test",
                "--data-dir",
                str(self.etcd_data),
                "--listen-client-urls",
                f"http://127.0.0.1:{self.etcd_port}",
                "--advertise-client-urls",
                f"http://127.0.0.1:{self.etcd_port}",
                "--listen-peer-urls",
                f"http://127.0.0.1:{self.etcd_peer_port}",
                "--initial-advertise-peer-urls",
                f"http://127.0.0.1:{self.etcd_peer_port}",
                "--initial-cluster",
                f"test=http://127.0.0.1:{self.etcd_peer_port}",
                "--log-level",
                "warn",
            ],
            self.workdir / "logs" / "etcd.log",
        )
        self.apiserver = ManagedProcess(
            "kube-apiserver",
            [
                str(tools.find("kube-apiserver")),
                f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
                f"--bind-address={self.address}",
                f"--advertise-address={self.address}",
                f"--secure-port={self.port}",
                f"--tls-cert-file={serving.cert}",
                f"--tls-private-key-file={serving.key}",
                f"--client-ca-file={self.ca.cert}",
                f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
                f"--service-account-key-file={sa.cert}",
                f"--service-account-signing-key-file={sa.key}",
                f"--authorization-mode={self.authorization}",
                f"--service-cluster-ip-range={self.service_cidr}",
                *self.extra_args,
                f"--cert-dir={self.pki}",
                "--profiling=false",
                "--v=1",
            ],
            self.workdir / "logs" / "kube-apiserver.log",
        )
        self.etcd.start()
        self.start_apiserver()
        self._write_kubeconfig()
        return self

    def start_apiserver(self) -> None:
        """Start (or restart after stop_apiserver) the apiserver and wait for /readyz."""
        self.apiserver.start()
        wait_for(self.ready, timeout=120, interval=0.25, what="kube-apiserver /readyz")

    def stop_apiserver(self) -> None:
        """Stop the apiserver only (etcd keeps the data): for reconnect tests."""
        self.apiserver.stop()

    def restart_apiserver(self) -> None:
        """Stop and start the apiserver, waiting until it serves again."""
        self.stop_apiserver()
        self.start_apiserver()

    def stop(self) -> None:
        """Stop the apiserver and etcd and remove etcd's data."""
        for proc in (self.apiserver, self.etcd):
            if proc:
                proc.stop()
        subprocess.run(["rm", "-rf", str(self.etcd_data)], check=False)

    # --- access --------------------------------------------------------------------------------
    def _ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.ca.cert))
        ctx.load_cert_chain(str(self.admin.cert), str(self.admin.key))
        return ctx

    def ready(self) -> bool:
        """True when the apiserver answers /readyz with "ok"."""
        if not self.apiserver.alive:
            raise RuntimeError("kube-apiserver exited:\n" + self.apiserver.log_tail())
        with urllib.request.urlopen(f"{self.server}/readyz", context=self._ssl_context(), timeout=2) as resp:
            return resp.read().strip() == b"ok"

    def _write_kubeconfig(self) -> None:
        self.write_kubeconfig(
            self.kubeconfig, user={"client-certificate": str(self.admin.cert), "client-key": str(self.admin.key)}
        )

    def write_kubeconfig(self, path: Path, *, user: dict, namespace: str = "default") -> Path:
        """Write a kubeconfig for this cluster with the given user entry (cert/key or token)."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "test",
            "clusters": [
                {"name": "test", "cluster": {"server": self.server, "certificate-authority": str(self.ca.cert)}}
            ],
            "users": [{"name": "user", "user": user}],
            "contexts": [{"name": "test", "context": {"cluster": "test", "user": "user", "namespace": namespace}}],
        }
        path.write_text(yaml.safe_dump(config))
        path.chmod(0o600)
        return path

    def kubeconfig_for_service_account(self, namespace: str, name: str, path: Path) -> Path:
        """Write a kubeconfig that acts as ServiceAccount `namespace/name` through a TokenRequest token."""
        token = self.kubectl("create", "token", name, "-n", namespace, "--duration=2h").stdout.strip()
        return self.write_kubeconfig(path, user={"token": token}, namespace=namespace)

    def kubectl(
        self,
        *args: str,
        input: str | None = None,
        check: bool = True,
        kubeconfig: Path | None = None,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess:
        """Run kubectl against this cluster; raise with its stderr when `check` and it fails."""
        cmd = [str(self.kubectl_path), f"--kubeconfig={kubeconfig or self.kubeconfig}", *args]
        result = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise subprocess.CalledProcessError(result.returncode, cmd, result.stdout, result.stderr)
        return result

    def apply(
        self, manifest: dict | str, *, namespace: str | None = None, check: bool = True, server_side: bool = False
    ) -> subprocess.CompletedProcess:
        """`kubectl apply -f -` a manifest given as a dict or YAML text."""
        text = manifest if isinstance(manifest, str) else yaml.safe_dump(manifest)
        args = ["apply", "-f", "-"] + (["-n", namespace] if namespace else [])
        if server_side:
            args.append("--server-side")
        return self.kubectl(*args, input=text, check=check)

    def get_json(self, *args: str, namespace: str | None = None) -> dict:
        """`kubectl get ... -o json` parsed."""
        ns = ["-n", namespace] if namespace else []
        return json.loads(self.kubectl("get", *args, *ns, "-o", "json").stdout)

    def api_client(self, kubeconfig: Path | None = None):
        """A kubernetes.client.ApiClient for this cluster (admin unless another kubeconfig is given)."""
        from kubernetes import config

        return config.new_client_from_config(config_file=str(kubeconfig or self.kubeconfig))
