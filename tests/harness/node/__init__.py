"""A real single-node Kubernetes built on this machine: images, containerd, kubelet and the control plane."""
