"""The node's configuration files: containerd, the CNI network, the kubelet and kube-proxy."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from harness.node.host import BRIDGE, DNS_SERVICE_IP, NODE_IP, NODE_POD_CIDR, POD_CIDR, SERVICE_CIDR

NODE_NAME = "phash-fleet-node"
RUNC = "/usr/sbin/runc"
CNI_BIN = "/usr/lib/cni"


def containerd_config(*, root: Path, state: Path, socket: Path, cni_conf_dir: Path, sandbox_image: str) -> str:
    """containerd 1.6 config: own root, state and sockets; CRI with runc (cgroupfs) and our CNI folder.

    `restrict_oom_score_adj` is required here: root lacks CAP_SYS_RESOURCE, and without it every sandbox
    fails when runc tries the kubelet's oom_score_adj of -998.
    """
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    return f"""version = 2
root = "{root}"
state = "{state}"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
                    "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
                    "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "{socket}"
[ttrpc]
  address = "{socket}.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""

[{cri}]
  sandbox_image = "{sandbox_image}"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  enable_selinux = false
  [{cri}.containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    discard_unpacked_layers = false
    [{cri}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [{cri}.containerd.runtimes.runc.options]
        BinaryName = "{RUNC}"
        SystemdCgroup = false
  [{cri}.cni]
    bin_dir = "{CNI_BIN}"
    conf_dir = "{cni_conf_dir}"
    max_conf_num = 1
"""


def cni_config(ipam_dir: Path) -> str:
    """The pod network: our bridge, host-local addresses of the node's /24, routes to pods and Services only."""
    return json.dumps(
        {
            "cniVersion": "1.0.0",
            "name": "phash-fleet",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": BRIDGE,
                    "isGateway": True,
                    "ipMasq": False,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "dataDir": str(ipam_dir),
                        "ranges": [[{"subnet": NODE_POD_CIDR, "gateway": NODE_IP, "rangeStart": "198.18.0.10"}]],
                        "routes": [{"dst": POD_CIDR}, {"dst": SERVICE_CIDR}],
                    },
                }
            ],
        },
        indent=2,
    )


def kubelet_config(*, ca: Path, socket: Path, resolv_conf: Path, pod_logs: Path, healthz_port: int) -> str:
    """KubeletConfiguration: cgroupfs on the hybrid hierarchy, webhook auth, our DNS, images never collected."""
    return yaml.safe_dump(
        {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "address": NODE_IP,
            "port": 10250,
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": healthz_port,
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": True},
                "x509": {"clientCAFile": str(ca)},
            },
            "authorization": {"mode": "Webhook"},
            "cgroupDriver": "cgroupfs",
            "failSwapOn": False,
            "failCgroupV1": False,
            "containerRuntimeEndpoint": f"unix://{socket}",
            "clusterDNS": [DNS_SERVICE_IP],
            "clusterDomain": "cluster.local",
            "resolvConf": str(resolv_conf),
            "podLogsDir": str(pod_logs),
            # Local images cannot be pulled again: never garbage-collect them, and evict only on a truly full disk.
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "evictionHard": {
                "memory.available": "100Mi",
                "nodefs.available": "1%",
                "imagefs.available": "1%",
                "nodefs.inodesFree": "1%",
            },
            "serializeImagePulls": False,
            "rotateCertificates": False,
            "serverTLSBootstrap": False,
            "staticPodPath": "",
            "maxPods": 110,
            "shutdownGracePeriod": "0s",
        }
    )


def kube_proxy_config(*, kubeconfig: Path, healthz_port: int, metrics_port: int) -> str:
    """KubeProxyConfiguration: iptables mode on the node address; conntrack values left as the kernel has them."""
    return yaml.safe_dump(
        {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "clientConnection": {"kubeconfig": str(kubeconfig)},
            "mode": "iptables",
            "clusterCIDR": POD_CIDR,
            "hostnameOverride": NODE_NAME,
            "bindAddress": NODE_IP,
            "healthzBindAddress": f"127.0.0.1:{healthz_port}",
            "metricsBindAddress": f"127.0.0.1:{metrics_port}",
            "nodePortAddresses": [f"{NODE_IP}/32"],
            "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
            "iptables": {"localhostNodePorts": False, "masqueradeAll": False},
        }
    )
