"""``ckpt inspect``: parse arguments, read, render."""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING

import typer

from ckpt_tool import exitcodes
from ckpt_tool.cli.app import LIMIT_HELP, app, parse_limits, report_error, stdout_console

if TYPE_CHECKING:
    from ckpt_tool.inspect.report import FileReport


class SortKey(str, Enum):
    name = "name"
    size = "size"
    file = "file"


@app.command("inspect")
def inspect_command(
    paths: list[str] = typer.Argument(..., help="Checkpoint files, directories or *.index.json."),
    as_json: bool = typer.Option(False, "--json", help="One JSON document on stdout."),
    expand: bool = typer.Option(False, "--expand", help="Do not collapse numbered layers."),
    pattern: str | None = typer.Option(
        None, "--filter", help="Only tensors whose name matches GLOB."),
    sort: SortKey = typer.Option(
        SortKey.file, "--sort", help="Order tensors by name or size (default: file order)."),
    limit: int | None = typer.Option(None, "--limit", min=0, help="Show at most N tensors."),
    stats: bool = typer.Option(
        False, "--stats", help="Per-tensor min/max/mean/std/NaN/Inf (reads tensor bytes)."),
    no_tree: bool = typer.Option(False, "--no-tree", help="Leave out the structure tree."),
    set_limit: list[str] | None = typer.Option(None, "--set-limit", help=LIMIT_HELP),
) -> None:
    """Report what a checkpoint holds, without running it."""
    from ckpt_tool.inputs import expand_inputs
    from ckpt_tool.inspect.report import FileReport, inspect_file, select_rows

    limits = parse_limits(set_limit)
    results = []
    for item in expand_inputs(paths):
        if item.error:
            report = FileReport(item.path, error=item.error)
        else:
            report = inspect_file(item.path, limits)
        rows = select_rows(report.tensors, pattern, sort.value, limit)
        if stats and report.ok:
            _add_stats(report, rows)
        if report.error:
            report_error(report.path, report.error)
        results.append((report, rows))
    if as_json:
        from ckpt_tool.render.inspect_json import render_json

        print(render_json(results))
    else:
        from ckpt_tool.render.inspect_view import file_view, totals_view

        console = stdout_console()
        for report, rows in results:
            if report.ok:
                console.print(file_view(report, rows, expand, show_tree=not no_tree))
        if len(results) > 1:
            console.print(totals_view([report for report, _ in results]))
    if any(not report.ok for report, _ in results):
        raise typer.Exit(exitcodes.ERROR)


def _add_stats(report: FileReport, rows: list) -> None:
    from ckpt_tool.containers.remote import is_url
    from ckpt_tool.inspect.stats import tensor_stats
    from ckpt_tool.readers.tensor_bytes import TensorFiles

    assert report.checkpoint is not None
    if report.checkpoint.size == 0:
        return
    if is_url(report.path):
        report.error = "--stats reads tensor bytes: download the file first"
        return
    try:
        with TensorFiles(report.checkpoint.path) as files:
            report.stats = {row.name: tensor_stats(files, row.tensor, report.checkpoint.byteorder)
                            for row in rows}
    except (OSError, ValueError) as exc:
        report.error = f"reading tensor bytes failed: {exc}"
