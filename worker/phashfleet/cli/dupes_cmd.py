"""`phashfleet dupes`: not built yet (issue #5)."""

import click


@click.command("dupes", context_settings={"ignore_unknown_options": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def cli(args: tuple[str, ...]) -> None:
    """Not built yet: arrives with issue #5."""
    raise click.ClickException("'phashfleet dupes' is not built yet (issue #5); nothing was done")
