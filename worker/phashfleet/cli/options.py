"""Options shared by the subcommands: `--log-format` and `--log-level`, which set up logging first."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import click

from phashfleet import logs

R = TypeVar("R")


def log_options(command: Callable[..., R]) -> Callable[..., R]:
    """Add `--log-format`/`--log-level` (or PHASHFLEET_LOG_FORMAT/_LEVEL) and set up logging before `command` runs."""

    @click.option(
        "--log-format",
        type=click.Choice(logs.FORMATS, case_sensitive=False),
        envvar=logs.FORMAT_ENV,
        default=logs.DEFAULT_FORMAT,
        show_default=True,
        show_envvar=True,
        help="Log lines on stderr as plain text or JSON objects, one per line.",
    )
    @click.option(
        "--log-level",
        type=click.Choice(logs.LEVELS, case_sensitive=False),
        envvar=logs.LEVEL_ENV,
        default=logs.DEFAULT_LEVEL,
        show_default=True,
        show_envvar=True,
        help="Least severe level logged.",
    )
    @functools.wraps(command)
    def run(*args: Any, log_format: str, log_level: str, **kwargs: Any) -> R:
        logs.setup(log_format, log_level)
        return command(*args, **kwargs)

    return run
