"""KEDA's operator and metrics API server as host processes, serving external.metrics.k8s.io to a cluster.

The operator watches ScaledObjects through the admin kubeconfig and serves its gRPC metrics service on
loopback; the metrics API server (the adapter) reads metrics from it over mutual TLS and serves
external.metrics.k8s.io over TLS on `host_ip`, where the apiserver reaches it through a selector-less
Service, a hand-made EndpointSlice and an APIService. Certificates come from KEDA's own throw-away CA,
not from KEDA's cert rotation (off) or its webhooks (not run).

The apiserver must be set up for API aggregation (front-proxy client certificate and request-header CA):
`front_proxy_args` gives the flags. Without kube-proxy in front of Service IPs (a bare ControlPlane) add
`--enable-aggregator-routing=true` so that the apiserver dials the EndpointSlice's address itself.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import yaml

from harness import tools
from harness.pki import CertificateAuthority
from harness.ports import free_port
from harness.process import ManagedProcess

NAMESPACE = "keda"
SERVICE = "keda-metrics-apiserver"
API_SERVICE = "v1beta1.external.metrics.k8s.io"
#: KEDA's CRDs: the operator watches all of them, so all must exist before it starts.
CRDS = (
    "scaledobjects.keda.sh",
    "scaledjobs.keda.sh",
    "triggerauthentications.keda.sh",
    "clustertriggerauthentications.keda.sh",
    "cloudeventsources.eventing.keda.sh",
    "clustercloudeventsources.eventing.keda.sh",
)
FRONT_PROXY_CLIENT = "front-proxy-client"


def front_proxy_args(ca: CertificateAuthority) -> tuple[str, ...]:
    """kube-apiserver flags for API aggregation: a front-proxy client certificate signed by `ca`, which is
    also the request-header CA (only that certificate's name may assert a user)."""
    client = ca.issue(FRONT_PROXY_CLIENT, FRONT_PROXY_CLIENT)
    return (
        f"--proxy-client-cert-file={client.cert}",
        f"--proxy-client-key-file={client.key}",
        f"--requestheader-client-ca-file={ca.pair.cert}",
        f"--requestheader-allowed-names={FRONT_PROXY_CLIENT}",
        "--requestheader-username-headers=X-Remote-User",
        "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
    )


def _cert_dir(folder: Path, ca: CertificateAuthority, pair) -> Path:
    """A folder in KEDA's layout (ca.crt, tls.crt, tls.key) for its gRPC mutual TLS."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(ca.pair.cert, folder / "ca.crt")
    shutil.copy(pair.cert, folder / "tls.crt")
    shutil.copy(pair.key, folder / "tls.key")
    (folder / "tls.key").chmod(0o600)
    return folder


class Keda:
    """KEDA's operator and metrics API server for the cluster of `kubeconfig` (admin), reachable at `host_ip`."""

    def __init__(self, workdir: Path, kubeconfig: Path, host_ip: str, resolv_conf: Path | None = None) -> None:
        self.workdir = workdir
        self.resolv_conf = resolv_conf  # the operator's scalers dial Services by name: resolve with cluster DNS
        self.kubeconfig = kubeconfig
        self.host_ip = host_ip
        self.kubectl_path = tools.find("kubectl")
        self.grpc_port = free_port()
        self.adapter_port = free_port()
        self.operator: ManagedProcess | None = None
        self.adapter: ManagedProcess | None = None

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        """Run kubectl as the admin; raise with its stderr when `check` and it fails."""
        cmd = [str(self.kubectl_path), f"--kubeconfig={self.kubeconfig}", *args]
        result = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=120)
        if check and result.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stderr}")
        return result

    def start(self) -> Keda:
        """Apply KEDA's CRDs, start the operator and the metrics API server, register the APIService, and
        wait until the apiserver reports it Available."""
        operator_bin, adapter_bin = tools.find("keda-operator"), tools.find("keda-adapter")
        for crd in tools.crd_files(*CRDS):
            self.kubectl("apply", "--server-side", "-f", str(crd))
        self.kubectl("wait", "--for=condition=Established", "--timeout=60s", *(f"crd/{n}" for n in CRDS))
        self.kubectl("create", "namespace", NAMESPACE, check=False)

        ca = CertificateAuthority(self.workdir / "pki", name="keda-ca")
        grpc_server = ca.issue("operator-grpc", "keda-operator", hosts=("127.0.0.1",), server=True)
        grpc_client = ca.issue("adapter-grpc", "keda-metrics-apiserver")
        serving = ca.issue(
            "adapter-serving",
            SERVICE,
            server=True,
            hosts=(self.host_ip, f"{SERVICE}.{NAMESPACE}.svc", f"{SERVICE}.{NAMESPACE}.svc.cluster.local"),
        )
        operator_certs = _cert_dir(self.workdir / "operator-certs", ca, grpc_server)
        adapter_certs = _cert_dir(self.workdir / "adapter-certs", ca, grpc_client)
        no_ca = self.workdir / "custom-ca"  # KEDA's default /custom/ca, empty
        no_ca.mkdir(parents=True, exist_ok=True)

        env = {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "WATCH_NAMESPACE": "",
            "POD_NAMESPACE": NAMESPACE,
            "KEDA_CLUSTER_OBJECT_NAMESPACE": NAMESPACE,
        }
        logs = self.workdir / "logs"
        # With `resolv_conf`, the operator runs in a mount namespace of its own whose /etc/resolv.conf is that
        # file, so its Redis scaler resolves `<service>.<namespace>.svc` through CoreDNS like a pod would.
        in_cluster_dns = (
            [
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                f'mount --bind "{self.resolv_conf}" /etc/resolv.conf && exec "$0" "$@"',
            ]
            if self.resolv_conf
            else []
        )
        self.operator = ManagedProcess(
            "keda-operator",
            [
                *in_cluster_dns,
                str(operator_bin),
                "--leader-elect=false",
                f"--metrics-service-bind-address=127.0.0.1:{self.grpc_port}",
                "--metrics-bind-address=0",
                f"--health-probe-bind-address=127.0.0.1:{free_port()}",
                f"--cert-dir={operator_certs}",
                "--enable-cert-rotation=false",
                f"--ca-dir={no_ca}",
                "--zap-encoder=console",
                "--zap-log-level=info",
            ],
            logs / "keda-operator.log",
            env=env,
        )
        self.adapter = ManagedProcess(
            "keda-adapter",
            [
                str(adapter_bin),
                f"--lister-kubeconfig={self.kubeconfig}",
                f"--authentication-kubeconfig={self.kubeconfig}",
                f"--authorization-kubeconfig={self.kubeconfig}",
                f"--bind-address={self.host_ip}",
                f"--secure-port={self.adapter_port}",
                f"--cert-dir={adapter_certs}",
                f"--tls-cert-file={serving.cert}",
                f"--tls-private-key-file={serving.key}",
                f"--metrics-service-address=127.0.0.1:{self.grpc_port}",
                f"--port={free_port()}",  # its plain-HTTP /metrics
                "--zap-encoder=console",
                "--zap-log-level=info",
            ],
            logs / "keda-adapter.log",
            env=env,
        )
        self.operator.start()
        self.adapter.start()
        self._register(ca)
        self._wait_available(timeout=120)
        return self

    def _register(self, ca: CertificateAuthority) -> None:
        """A selector-less Service whose EndpointSlice points at the adapter on the host, and the APIService."""
        docs = [
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": SERVICE, "namespace": NAMESPACE},
                "spec": {
                    "type": "ClusterIP",
                    "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": self.adapter_port}],
                },
            },
            {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": f"{SERVICE}-host",
                    "namespace": NAMESPACE,
                    "labels": {
                        "kubernetes.io/service-name": SERVICE,
                        "endpointslice.kubernetes.io/managed-by": "phash-fleet-harness",
                    },
                },
                "addressType": "IPv4",
                "endpoints": [{"addresses": [self.host_ip], "conditions": {"ready": True}}],
                "ports": [{"name": "https", "port": self.adapter_port, "protocol": "TCP"}],
            },
            {
                "apiVersion": "apiregistration.k8s.io/v1",
                "kind": "APIService",
                "metadata": {"name": API_SERVICE},
                "spec": {
                    "group": "external.metrics.k8s.io",
                    "version": "v1beta1",
                    "service": {"name": SERVICE, "namespace": NAMESPACE, "port": 443},
                    "caBundle": base64.b64encode(ca.pair.cert.read_bytes()).decode(),
                    "groupPriorityMinimum": 100,
                    "versionPriority": 100,
                },
            },
        ]
        self.kubectl(
            "apply",
            "--server-side",
            "--force-conflicts",
            "-f",
            "-",
            input="---\n".join(yaml.safe_dump(d) for d in docs),
        )

    def _wait_available(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            for proc in (self.operator, self.adapter):
                if not proc.alive:
                    raise RuntimeError(f"{proc.name} exited:\n{proc.log_tail()}")
            out = self.kubectl("get", "apiservice", API_SERVICE, "-o", "json", check=False)
            if out.returncode == 0:
                conditions = json.loads(out.stdout).get("status", {}).get("conditions", [])
                available = next((c for c in conditions if c["type"] == "Available"), {})
                if available.get("status") == "True":
                    return
                last = f"{available.get('reason')}: {available.get('message')}"
            time.sleep(0.5)
        raise RuntimeError(
            f"APIService {API_SERVICE} not Available after {timeout:.0f}s ({last})\n"
            f"keda-adapter log:\n{self.adapter.log_tail()}\n"
            f"keda-operator log:\n{self.operator.log_tail()}"
        )

    def stop(self) -> None:
        """Unregister the APIService (so discovery does not keep failing on it), then stop both processes."""
        if self.adapter is not None:
            self.kubectl("delete", "apiservice", API_SERVICE, "--ignore-not-found", "--wait=false", check=False)
        for proc in (self.adapter, self.operator):
            if proc is not None:
                proc.stop()
