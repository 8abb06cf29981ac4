"""``ckpt diff``: parse arguments, compare, render, exit 0 equal / 1 different / 2 error."""

from __future__ import annotations

import typer

from ckpt_tool import exitcodes
from ckpt_tool.cli.app import LIMIT_HELP, app, parse_limits, report_error, stdout_console


@app.command("diff")
def diff_command(
    path_a: str = typer.Argument(..., metavar="A"),
    path_b: str = typer.Argument(..., metavar="B"),
    values: bool = typer.Option(False, "--values", help="Compare tensor values (streams bytes)."),
    rtol: float = typer.Option(1e-5, "--rtol", help="Relative tolerance for allclose."),
    atol: float = typer.Option(1e-8, "--atol", help="Absolute tolerance for allclose."),
    strip_prefix: str | None = typer.Option(
        None, "--strip-prefix", help="Drop this name prefix on both sides (default: detected)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON document on stdout."),
    set_limit: list[str] | None = typer.Option(None, "--set-limit", help=LIMIT_HELP),
) -> None:
    """Compare two checkpoints: names, dtypes, shapes, metadata, and values with --values."""
    from ckpt_tool.containers.remote import is_url
    from ckpt_tool.diff import diff_reports
    from ckpt_tool.inspect.report import inspect_file

    limits = parse_limits(set_limit)
    reports = [inspect_file(path, limits) for path in (path_a, path_b)]
    failed = [r for r in reports if r.error]
    for report in failed:
        report_error(report.path, report.error or "")
    if values and not failed:
        for report in reports:
            if is_url(report.path):
                report_error(report.path, "--values reads tensor bytes: download the file first")
                failed.append(report)
    if failed:
        raise typer.Exit(exitcodes.ERROR)
    try:
        result = diff_reports(reports[0], reports[1], values, rtol, atol, strip_prefix)
    except (OSError, ValueError) as exc:
        report_error(path_a, f"reading tensor bytes failed: {exc}")
        raise typer.Exit(exitcodes.ERROR) from None
    if as_json:
        from ckpt_tool.render.diff_view import render_json

        print(render_json(path_a, path_b, result))
    else:
        from ckpt_tool.render.diff_view import render_view

        stdout_console().print(render_view(path_a, path_b, result))
    raise typer.Exit(exitcodes.OK if result.equal else exitcodes.FINDINGS)
