"""The real node's pure parts: the provisioner's decisions, the configs' addresses, the firewall clean-up's parsing."""

from __future__ import annotations

import json

import yaml

from harness.node import configs, host, provisioner


def _claim(phase="Pending", storage_class="local", volume=""):
    return {
        "metadata": {"name": "data-redis-0", "namespace": "ns", "uid": "u-1"},
        "spec": {
            "storageClassName": storage_class,
            "volumeName": volume,
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Gi"}},
        },
        "status": {"phase": phase},
    }


class FakeKubectl:
    """Answers `get pvc/pv` from lists and records what the provisioner creates and deletes."""

    def __init__(self, claims, volumes):
        self.claims, self.volumes, self.created, self.deleted = claims, volumes, [], []

    def __call__(self, *args, input=None):
        if args[:2] == ("get", "pvc"):
            return json.dumps({"items": self.claims})
        if args[:2] == ("get", "pv"):
            return json.dumps({"items": self.volumes})
        if args[0] == "create":
            self.created.append(json.loads(input))
        elif args[0] == "delete":
            self.deleted.append(args[2])
        return ""


def test_a_pending_claim_of_the_local_class_gets_a_world_writable_folder_and_a_bound_volume(tmp_path):
    kubectl = FakeKubectl([_claim(), _claim(storage_class="other"), _claim(phase="Bound")], [])
    provisioner.reconcile(kubectl, tmp_path)
    assert len(kubectl.created) == 1
    volume = kubectl.created[0]
    assert volume["spec"]["claimRef"] == {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "namespace": "ns",
        "name": "data-redis-0",
        "uid": "u-1",
    }
    folder = tmp_path / "pvc-u-1"
    assert volume["spec"]["hostPath"]["path"] == str(folder)
    assert folder.stat().st_mode & 0o777 == 0o777


def test_a_claim_already_provisioned_is_not_provisioned_twice(tmp_path):
    existing = provisioner.volume_for(_claim(), tmp_path)
    existing["status"] = {"phase": "Available"}
    kubectl = FakeKubectl([_claim()], [existing])
    provisioner.reconcile(kubectl, tmp_path)
    assert kubectl.created == [] and kubectl.deleted == []


def test_a_released_volume_of_ours_is_deleted_with_its_folder_and_others_are_left(tmp_path):
    ours = provisioner.volume_for(_claim(), tmp_path)
    ours["status"] = {"phase": "Released"}
    (tmp_path / "pvc-u-1").mkdir()
    theirs = {"metadata": {"name": "static"}, "spec": {}, "status": {"phase": "Released"}}
    kubectl = FakeKubectl([], [ours, theirs])
    provisioner.reconcile(kubectl, tmp_path)
    assert kubectl.deleted == ["pvc-u-1"] and not (tmp_path / "pvc-u-1").exists()


def test_the_default_storage_class_is_served_by_the_provisioner():
    sc = provisioner.storage_class()
    assert sc["provisioner"] == provisioner.PROVISIONER
    assert sc["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "true"


def test_pods_get_addresses_of_the_node_range_and_routes_to_pods_and_services_only(tmp_path):
    plugin = json.loads(configs.cni_config(tmp_path))["plugins"][0]
    assert plugin["bridge"] == host.BRIDGE and plugin["ipMasq"] is False
    assert plugin["ipam"]["ranges"][0][0]["subnet"] == host.NODE_POD_CIDR
    assert [r["dst"] for r in plugin["ipam"]["routes"]] == [host.POD_CIDR, host.SERVICE_CIDR]  # no default route


def test_kubelet_never_collects_local_images_and_uses_cluster_dns(tmp_path):
    config = yaml.safe_load(
        configs.kubelet_config(
            ca=tmp_path / "ca",
            socket=tmp_path / "s",
            resolv_conf=tmp_path / "r",
            pod_logs=tmp_path / "l",
            healthz_port=1,
        )
    )
    assert config["imageGCHighThresholdPercent"] == 100
    assert config["clusterDNS"] == [host.DNS_SERVICE_IP] and config["address"] == host.NODE_IP
    assert config["cgroupDriver"] == "cgroupfs" and config["failCgroupV1"] is False


def test_containerd_restricts_oom_score_adj_because_root_lacks_cap_sys_resource(tmp_path):
    text = configs.containerd_config(
        root=tmp_path, state=tmp_path, socket=tmp_path / "s", cni_conf_dir=tmp_path, sandbox_image="localhost/pause:1"
    )
    assert "restrict_oom_score_adj = true" in text and 'sandbox_image = "localhost/pause:1"' in text
    assert "SystemdCgroup = false" in text


def test_kube_proxy_leaves_conntrack_alone_and_serves_node_ports_on_the_node_address_only(tmp_path):
    config = yaml.safe_load(configs.kube_proxy_config(kubeconfig=tmp_path / "k", healthz_port=1, metrics_port=2))
    assert config["conntrack"]["maxPerCore"] == 0 and config["conntrack"]["min"] == 0
    assert config["nodePortAddresses"] == [f"{host.NODE_IP}/32"]
    assert config["iptables"]["localhostNodePorts"] is False


def test_a_jump_rule_is_deleted_with_its_own_arguments():
    rule = '-A INPUT -m comment --comment "kubernetes firewall" -j KUBE-FIREWALL'
    assert host._delete_args(rule) == [
        "-D",
        "INPUT",
        "-m",
        "comment",
        "--comment",
        "kubernetes firewall",
        "-j",
        "KUBE-FIREWALL",
    ]
