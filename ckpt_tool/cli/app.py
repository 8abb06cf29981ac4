"""The Typer application and what every command shares: consoles, limits, one-line errors."""

from __future__ import annotations

import os
import sys
from typing import NoReturn

import typer

from ckpt_tool import __version__, exitcodes
from ckpt_tool.limits import DEFAULT_LIMITS, Limits

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="Inspect, lint and convert PyTorch checkpoints without running them.",
)


def _version(value: bool) -> None:
    if value:
        print(f"ckpt {__version__}")
        raise typer.Exit(exitcodes.OK)


@app.callback()
def root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Inspect, lint and convert PyTorch checkpoints without running them."""


def stdout_console():  # -> rich.console.Console
    """Rich wraps at 80 columns when stdout is not a terminal; tables of names need more."""
    from rich.console import Console

    width = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 160
    return Console(highlight=False, soft_wrap=False, width=width)


def stderr_console():  # -> rich.console.Console
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def report_error(path: str, message: str) -> None:
    """One line on stderr naming the file and the problem."""
    print(f"ckpt: {path}: {message}", file=sys.stderr)


def usage_error(message: str) -> NoReturn:
    print(f"ckpt: {message}", file=sys.stderr)
    raise typer.Exit(exitcodes.ERROR)


LIMIT_HELP = (
    "Override a safety limit, NAME=VALUE (repeatable). Names: " + ", ".join(Limits.names()) + "."
)


def parse_limits(items: list[str] | None) -> Limits:
    if not items:
        return DEFAULT_LIMITS
    values = {}
    for item in items:
        name, _, value = item.partition("=")
        if name not in Limits.names() or not value.strip().isdigit():
            names = ", ".join(Limits.names())
            usage_error(f"--set-limit takes NAME=INTEGER with NAME one of {names}")
        values[name] = int(value)
    try:
        return Limits(**{**DEFAULT_LIMITS.__dict__, **values})
    except ValueError as exc:
        usage_error(f"--set-limit: {exc}")


def interactive() -> bool:
    """Progress bars and colour only for a person at a terminal (not CI, not pre-commit)."""
    return sys.stdout.isatty() and not os.environ.get("PRE_COMMIT") and not os.environ.get("CI")
