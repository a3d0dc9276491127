"""`phashfleet worker`: not built yet (issue #4)."""

import click


@click.command("worker", context_settings={"ignore_unknown_options": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def cli(args: tuple[str, ...]) -> None:
    """Not built yet: arrives with issue #4."""
    raise click.ClickException("'phashfleet worker' is not built yet (issue #4); nothing was done")
