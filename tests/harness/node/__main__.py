"""`python -m harness.node up|down|status`: the node for a person (scripts/cluster), like kind."""

from __future__ import annotations

import sys
from pathlib import Path

from harness import tools
from harness.node.node import Node

STATE = tools.CACHE / "cluster"
USAGE = "usage: scripts/cluster up | down | status  [--state FOLDER] [--keep-logs]"


def main(argv: list[str]) -> int:
    """Start, stop or describe the one local node; `up` prints the two lines a shell needs (eval-able)."""
    command = argv[0] if argv else ""
    state = Path(argv[argv.index("--state") + 1]) if "--state" in argv else STATE
    node = Node(state)
    if command == "up":
        if node.alive() and node.kubeconfig.exists() and node.values_file.exists():
            print("the node is already up", file=sys.stderr)
        else:
            node.up()
        print(f"export KUBECONFIG={node.kubeconfig}")
        print(f"export PHASHFLEET_LOCAL_VALUES={node.values_file}")
        return 0
    if command == "down":
        node.down(remove_state=True, keep_logs="--keep-logs" in argv)
        print("the node is down; the host is as it was", file=sys.stderr)
        return 0
    if command == "status":
        status = node.status()
        if not status:
            print("down")
            return 1
        for name, alive in status.items():
            print(f"{name:24} {'running' if alive else 'STOPPED'}")
        print(f"KUBECONFIG={node.kubeconfig}")
        return 0 if all(status.values()) else 1
    print(USAGE, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
