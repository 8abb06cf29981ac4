"""``ckpt diff``: parse arguments, compare, render, exit 0 equal / 1 different / 2 error."""

from __future__ import annotations

import os

import typer

from ckpt_tool import exitcodes
from ckpt_tool.cli.application import (
    COMMON_EXIT_CODES,
    LIMIT_HELP,
    Command,
    app,
    epilog,
    parse_limits,
    usage_error,
)

_EPILOG = epilog(
    ["ckpt diff a.pt b.pt                          # names, dtypes, shapes, metadata",
     "ckpt diff --values m.pth.tar m.safetensors   # and every value (a lossless check)",
     "ckpt diff --values run1/ckpt/ run2/ckpt/     # folders, shards, *.index.json",
     "ckpt diff --json a.pt b.pt | jq .verdict"],
    {0: "equal (--values) or the same layout (names, dtypes, shapes, metadata)",
     1: "different", 2: "an input could not be read, or bad usage", **COMMON_EXIT_CODES})


@app.command("diff", cls=Command, epilog=_EPILOG)
def diff_command(
    path_a: str = typer.Argument(..., metavar="A",
                                 help="A checkpoint file, folder, *.index.json or URL."),
    path_b: str = typer.Argument(..., metavar="B", help="The checkpoint to compare A with."),
    values: bool = typer.Option(
        False, "--values", help="Compare tensor values too (reads the tensor bytes)."),
    rtol: float = typer.Option(1e-5, "--rtol", metavar="FLOAT",
                               help="Relative tolerance for allclose."),
    atol: float = typer.Option(1e-8, "--atol", metavar="FLOAT",
                               help="Absolute tolerance for allclose."),
    strip_prefix: str | None = typer.Option(
        None, "--strip-prefix", metavar="PREFIX",
        help="Drop this name prefix on both sides (default: a weights root such as state_dict. "
        "is detected)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON document on stdout."),
    quiet: bool = typer.Option(False, "--quiet", "-q",
                               help="No progress bar and no summary line on stderr."),
    set_limit: list[str] | None = typer.Option(None, "--set-limit", metavar="NAME=VALUE",
                                               help=LIMIT_HELP),
) -> None:
    """Compare two checkpoints: names, dtypes, shapes and metadata; values with --values."""
    from ckpt_tool.cli.output import Bar, Timer, emit, error_line, stdout_width, summary_line, write
    from ckpt_tool.containers.remote import is_url
    from ckpt_tool.diff import diff_sides
    from ckpt_tool.errors import ConfigError

    timer = Timer()
    limits = parse_limits(set_limit)
    try:
        rules = _walk_rules([path_a, path_b])
    except ConfigError as exc:
        usage_error(str(exc))
    sides = [_load(path, limits, rules) for path in (path_a, path_b)]
    failed = False
    for side in sides:
        for path, message in side.errors:
            error_line(path, message)
            failed = True
    if values and not failed:
        for side in sides:
            if is_url(side.path):
                error_line(side.path, "--values reads tensor bytes: download the file first")
                failed = True
    if values and not failed:
        from ckpt_tool.errors import MissingExtra
        from ckpt_tool.extras import require_numpy

        try:
            require_numpy("diff --values")
        except MissingExtra as exc:
            error_line(path_a, str(exc))
            failed = True
    if failed:
        raise typer.Exit(exitcodes.ERROR)
    try:
        with Bar("comparing", enabled=values and not quiet) as bar:
            result = diff_sides(sides[0], sides[1], values, rtol, atol, strip_prefix, bar.update)
    except (OSError, ValueError) as exc:
        error_line(path_a, f"reading tensor bytes failed: {exc}")
        raise typer.Exit(exitcodes.ERROR) from None
    if as_json:
        from ckpt_tool.render.diff_json import diff_document
        from ckpt_tool.render.safe import json_text

        write(json_text(diff_document(path_a, path_b, result), default=str)
              + "\n")
    else:
        from ckpt_tool.render.diff_view import render_view

        emit(render_view(path_a, path_b, result, stdout_width()))
    if not quiet and not as_json:
        from ckpt_tool.render.units import human_bytes

        files = sum(len(side.files) for side in sides)
        nbytes = sum(side.nbytes for side in sides)
        compared = "values compared" if values else "values not compared"
        summary_line("diff", f"{result.verdict}: {files} files, {human_bytes(nbytes)}, "
                     f"{compared} ({timer})")
    raise typer.Exit(exitcodes.OK if result.equal else exitcodes.FINDINGS)


def _walk_rules(paths: list[str]):
    """How folders are walked; the configuration is read only when there is a folder to walk."""
    from ckpt_tool.discovery.walk import DEFAULT_RULES

    if not any(os.path.isdir(path) for path in paths):
        return DEFAULT_RULES
    from ckpt_tool.discovery.project import find_project, walk_rules

    return walk_rules(find_project(os.getcwd()))


def _load(path: str, limits, rules):
    from ckpt_tool.diff import side_from_inputs
    from ckpt_tool.inputs import expand_inputs
    from ckpt_tool.inspect.report import inspect_file

    return side_from_inputs(path, expand_inputs([path], rules),
                            lambda file: inspect_file(file, limits))
