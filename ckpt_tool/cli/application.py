"""The Typer application and what every command shares: help layout, limits, usage errors."""

from __future__ import annotations

import sys
from typing import NoReturn

import typer
from typer.core import TyperCommand

from ckpt_tool import __version__, exitcodes
from ckpt_tool.limits import DEFAULT_LIMITS, Limits

app = typer.Typer(
    add_completion=False,  # `ckpt completion SHELL` prints the script instead
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    help="Inspect, lint, convert and compare PyTorch checkpoints without running them.",
)


class Command(TyperCommand):
    """Usage lines as man pages write them: ``ckpt lint [OPTIONS] PATH...`` (Typer would write
    required arguments in braces)."""

    def collect_usage_pieces(self, ctx):  # -> list[str]
        return [piece.replace("{", "").replace("}", "")
                for piece in super().collect_usage_pieces(ctx)]


def _version(value: bool) -> None:
    if value:
        print(f"ckpt {__version__}")
        raise typer.Exit(exitcodes.OK)


@app.callback(epilog="\b\nRun `ckpt COMMAND -h` for a command's options, examples and exit "
              "codes.\nColour: NO_COLOR turns it off, FORCE_COLOR on.")
def root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Inspect, lint, convert and compare PyTorch checkpoints without running them."""


def epilog(examples: list[str], exit_codes: dict[int, str]) -> str:
    """The end of a command's --help: examples, then what each exit code means. ``\\b`` keeps
    click from re-wrapping the lines."""
    lines = ["\b", "Examples:", *(f"  {example}" for example in examples), "", "\b",
             "Exit codes:"]
    lines += [f"  {code:<3} {meaning}" for code, meaning in exit_codes.items()]
    return "\n".join(lines)


COMMON_EXIT_CODES = {exitcodes.INTERRUPTED: "interrupted (Ctrl-C)",
                    exitcodes.PIPE_CLOSED: "stdout was closed by its reader (| head)"}


def usage_error(message: str) -> NoReturn:
    from ckpt_tool.render.safe import printable

    print(f"ckpt: {printable(message)}", file=sys.stderr)
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
        return DEFAULT_LIMITS.replace(**values)
    except ValueError as exc:
        usage_error(f"--set-limit: {exc}")
