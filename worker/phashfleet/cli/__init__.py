"""The `phashfleet` console script: a small click group that adds each subcommand module."""

import click

from phashfleet import __version__
from phashfleet.cli import dupes_cmd, hash_cmd, operator_cmd, run_cmd, worker_cmd


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="phashfleet")
def main() -> None:
    """Compute perceptual image hashes at scale, locally or on Kubernetes."""


for _module in (hash_cmd, run_cmd, dupes_cmd, operator_cmd, worker_cmd):
    main.add_command(_module.cli)
