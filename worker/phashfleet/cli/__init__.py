"""The `phashfleet` console script: a small click group that adds each subcommand module."""

import signal
import sys

if sys.argv[1:2] == ["worker"]:
    # A worker pod may get SIGTERM while still importing: hold it from the very start until Dramatiq
    # has its handlers in place (see cli/worker_cmd.py), so it drains instead of dying.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})

import click

from phashfleet import __version__
from phashfleet.cli import dupes_cmd, hash_cmd, operator_cmd, results_cmd, run_cmd, worker_cmd


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="phashfleet")
def main() -> None:
    """Compute perceptual image hashes at scale, locally or on Kubernetes."""


for _module in (hash_cmd, run_cmd, results_cmd, dupes_cmd, operator_cmd, worker_cmd):
    main.add_command(_module.cli)
