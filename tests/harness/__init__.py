"""The test harness: real kube-apiserver + etcd, Redis, worker processes, kubectl and helm on loopback."""
