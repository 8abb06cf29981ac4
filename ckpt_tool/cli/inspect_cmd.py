"""``ckpt inspect``: parse arguments, read, render."""

from __future__ import annotations

import os
from enum import Enum
from typing import TYPE_CHECKING

import typer

from ckpt_tool import exitcodes
from ckpt_tool.cli.app import (
    COMMON_EXIT_CODES,
    LIMIT_HELP,
    Command,
    app,
    epilog,
    parse_limits,
    usage_error,
)

if TYPE_CHECKING:
    from ckpt_tool.cli.output import Bar
    from ckpt_tool.inspect.report import FileReport


class SortKey(str, Enum):
    name = "name"
    size = "size"
    file = "file"


_EPILOG = epilog(
    ["ckpt inspect model.pth.tar                 # summary, structure, values, tensors",
     "ckpt inspect checkpoints/                  # one row per file (-v: every file in full)",
     "ckpt inspect model.safetensors.index.json  # every shard",
     "ckpt inspect --stats --filter '*.weight' m.pt",
     "ckpt inspect --json m.pt | jq '.files[0].parameter_count'"],
    {0: "every file was read", 2: "a file could not be read (the others are still shown), or "
     "bad usage", **COMMON_EXIT_CODES})


@app.command("inspect", cls=Command, epilog=_EPILOG)
def inspect_command(
    paths: list[str] = typer.Argument(
        ..., metavar="PATH...", help="Checkpoint files, folders (walked), *.index.json or URLs."),
    as_json: bool = typer.Option(False, "--json", help="One JSON document on stdout."),
    verbose: bool = typer.Option(
        False, "--verbose", "-v",
        help="The full view of every file (several files are otherwise one row each)."),
    expand: bool = typer.Option(False, "--expand", help="Do not collapse numbered layers."),
    pattern: str | None = typer.Option(
        None, "--filter", metavar="GLOB", help="Only tensors whose name matches GLOB."),
    sort: SortKey = typer.Option(
        SortKey.file, "--sort", metavar="KEY",
        help="Order tensors by name or size (default: file, the file's order)."),
    limit: int | None = typer.Option(None, "--limit", min=0, metavar="N",
                                     help="Show at most N tensors."),
    stats: bool = typer.Option(
        False, "--stats", help="Per-tensor min/max/mean/std/NaN/Inf (reads tensor bytes)."),
    no_tree: bool = typer.Option(False, "--no-tree", help="Leave out the structure tree."),
    quiet: bool = typer.Option(False, "--quiet", "-q",
                               help="No progress bar and no summary line on stderr."),
    show_files: bool = typer.Option(
        False, "--show-files", help="List the files that would be read, then exit."),
    exclude: list[str] | None = typer.Option(
        None, "--exclude", metavar="PATTERN",
        help="Patterns to pass over in folder walks, replacing the defaults (.git, .venv, "
        "node_modules, caches, site-packages...) (comma-separated, repeatable)."),
    extend_exclude: list[str] | None = typer.Option(
        None, "--extend-exclude", metavar="PATTERN",
        help="Patterns to pass over besides the defaults (comma-separated, repeatable)."),
    respect_gitignore: bool | None = typer.Option(
        None, "--respect-gitignore/--no-respect-gitignore",
        help="Pass over files .gitignore ignores (default; tracked files are always read)."),
    set_limit: list[str] | None = typer.Option(None, "--set-limit", metavar="NAME=VALUE",
                                               help=LIMIT_HELP),
) -> None:
    """Report what a checkpoint holds, without running it."""
    from ckpt_tool.cli.output import Bar, Timer, error_line, summary_line
    from ckpt_tool.discovery.walk import Passed
    from ckpt_tool.inputs import expand_inputs
    from ckpt_tool.inspect.report import FileReport, inspect_file, select_rows

    timer = Timer()
    limits = parse_limits(set_limit)
    rules = _walk_rules(paths, exclude, extend_exclude, respect_gitignore)
    passed: list[Passed] = []
    items = expand_inputs(paths, rules, passed)
    if show_files:
        _show_files([item.path for item in items if not item.error], passed, quiet)
        raise typer.Exit(exitcodes.OK)
    if stats:
        _require_numpy()
    results = []
    with Bar("statistics", enabled=stats and not quiet) as bar:
        for item in items:
            if item.error:
                report = FileReport(item.path, error=item.error)
            else:
                report = inspect_file(item.path, limits)
            rows = select_rows(report.tensors, pattern, sort.value, limit)
            if stats and report.ok:
                _add_stats(report, rows, bar)
            if report.error:
                error_line(report.path, report.error)
            results.append((report, rows))
    models = [item.shard_of for item in items]
    groups = {item.group for item in items}
    root = groups.pop() if len(groups) == 1 and len(paths) == 1 and os.path.isdir(paths[0]) \
        else None
    if as_json:
        from ckpt_tool.cli.output import write
        from ckpt_tool.render.inspect_json import render_json

        write(render_json(results, models) + "\n")
    else:
        full = verbose or len(results) == 1 or stats or pattern is not None or limit is not None
        _show(results, models, full, expand, not no_tree, root)
    reports = [report for report, _ in results]
    if not quiet and not as_json:
        from ckpt_tool.discovery.walk import gitignore_hint

        summary_line("inspect", _summary(reports, str(timer), gitignore_hint(passed)))
    if any(not report.ok for report in reports):
        raise typer.Exit(exitcodes.ERROR)


def _walk_rules(paths: list[str], exclude: list[str] | None, extend: list[str] | None,
                respect_gitignore: bool | None):
    """How folders are walked; the configuration is read only when there is a folder to walk."""
    from ckpt_tool.discovery.walk import DEFAULT_RULES

    if not any(os.path.isdir(path) for path in paths):
        return DEFAULT_RULES
    from ckpt_tool.discovery.project import WalkFlags, find_project, walk_rules
    from ckpt_tool.errors import ConfigError
    from ckpt_tool.lint.config import split_commas

    flags = WalkFlags(tuple(split_commas(exclude)) if exclude else None,
                      tuple(split_commas(extend)), respect_gitignore)
    try:
        return walk_rules(find_project(os.getcwd()), flags)
    except ConfigError as exc:
        usage_error(str(exc))


def _show_files(files: list[str], passed: list, quiet: bool) -> None:
    import sys

    from ckpt_tool.cli.output import write
    from ckpt_tool.render.safe import printable

    write("".join(printable(path) + "\n" for path in files))
    if not quiet:
        for item in passed:
            print(f"ckpt inspect: passed over {printable(item.path)}: {item.reason}",
                  file=sys.stderr)


def _require_numpy() -> None:
    from ckpt_tool.errors import MissingExtra
    from ckpt_tool.extras import require_numpy

    try:
        require_numpy("--stats")
    except MissingExtra as exc:
        usage_error(str(exc))


def _show(results: list, models: list[str | None], full: bool, expand: bool,
          tree: bool, root: str | None) -> None:
    from ckpt_tool.cli.output import emit, stdout_width
    from ckpt_tool.render.inspect_view import file_view, files_table, totals_view

    width = stdout_width()
    reports = [report for report, _ in results]
    if full:
        for report, rows in results:
            if report.ok:
                emit(file_view(report, rows, expand, show_tree=tree, width=width))
    else:
        from ckpt_tool.inspect.models import model_rows

        title = f"files in {root}" if root else ""
        emit(files_table(model_rows(reports, models, root), width, title))
    if len(results) > 1:
        emit(totals_view(reports))


def _summary(reports: list[FileReport], elapsed: str, hint: str = "") -> str:
    from ckpt_tool.render.units import human_bytes

    size = sum(r.checkpoint.size for r in reports if r.checkpoint is not None)
    read = sum(r.checkpoint.bytes_read for r in reports if r.checkpoint is not None)
    failed = sum(1 for r in reports if not r.ok)
    files = f"{len(reports)} {'file' if len(reports) == 1 else 'files'}"
    unreadable = f" ({failed} unreadable)" if failed else ""
    return (f"{files}{unreadable}, {human_bytes(size)}, {human_bytes(read)} read{hint} "
            f"({elapsed})")


def _add_stats(report: FileReport, rows: list, bar: Bar) -> None:
    from ckpt_tool.containers.remote import is_url
    from ckpt_tool.inspect.stats import tensor_stats
    from ckpt_tool.readers.tensor_bytes import TensorFiles

    assert report.checkpoint is not None
    if report.checkpoint.size == 0:
        return
    if is_url(report.path):
        report.error = "--stats reads tensor bytes: download the file first"
        return
    bar.total += sum(row.tensor.nbytes for row in rows)
    bar.update(bar.done, bar.total, report.path)
    try:
        with TensorFiles(report.checkpoint.path) as files:
            report.stats = {row.name: tensor_stats(files, row.tensor, report.checkpoint.byteorder,
                                                   bar.advance)
                            for row in rows}
    except (OSError, ValueError) as exc:
        report.error = f"reading tensor bytes failed: {exc}"
