"""``ckpt lint``: parse arguments, lint every file, print the report, pick the exit code.

Exit codes: 0 nothing reported, 1 findings (or ``--fix`` changed a file), 2 usage or internal
error. A file that cannot be read is a finding (CKPT006); the other files are still checked.
"""

from __future__ import annotations

import dataclasses
import os
import sys

import typer

from ckpt_tool import exitcodes
from ckpt_tool.cli.app import LIMIT_HELP, app, interactive, parse_limits, usage_error
from ckpt_tool.lint.findings import Finding
from ckpt_tool.lint.formats import OutputFormat


@app.command("lint")
def lint_command(
    paths: list[str] = typer.Argument(..., metavar="PATH",
                                      help="Checkpoint files or directories."),
    output_format: OutputFormat = typer.Option(
        OutputFormat.TEXT, "--format", metavar="FORMAT",
        help="text (default), json, github (workflow annotations) or sarif (SARIF 2.1.0 for "
        "code scanning)."),
    select: list[str] | None = typer.Option(
        None, "--select", metavar="CODES",
        help="Rules to check: codes, prefixes, slugs or ALL (comma-separated, repeatable); "
        "replaces the configured selection."),
    ignore: list[str] | None = typer.Option(
        None, "--ignore", metavar="CODES",
        help="Rules not to check (comma-separated, repeatable)."),
    fix: bool = typer.Option(
        False, "--fix", help="Rename *.pth checkpoints to *.pt (git mv for tracked files)."),
    set_limit: list[str] | None = typer.Option(None, "--set-limit", metavar="NAME=VALUE",
                                               help=LIMIT_HELP),
) -> None:
    """Check checkpoint files for code, unsafe names and formats, without loading them."""
    from ckpt_tool.lint import ConfigError, lint_file, load_config
    from ckpt_tool.lint.config import split_commas
    from ckpt_tool.lint.formats import render
    from ckpt_tool.lint.paths import collect_paths

    limits = parse_limits(set_limit)
    try:
        config = load_config(os.getcwd(), split_commas(select), split_commas(ignore))
    except ConfigError as exc:
        usage_error(str(exc))
    selection = collect_paths(paths)
    files = selection.files
    findings = [finding for path in files for finding in lint_file(path, config, limits)]
    changed = 0
    if fix:
        findings, changed = _apply_fixes(findings)
    sys.stdout.write(render(findings, output_format, colour=_colour()))
    sys.stdout.flush()  # the report before the summary on stderr, on a shared terminal too
    if output_format is OutputFormat.TEXT:
        _summary(findings, len(files), changed, len(selection.skipped))
    raise typer.Exit(exitcodes.FINDINGS if findings or changed else exitcodes.OK)


def _colour() -> bool:
    """Colour for a person at a terminal only (never in pre-commit or CI, nor with NO_COLOR)."""
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    return interactive()


def _apply_fixes(findings: list[Finding]) -> tuple[list[Finding], int]:
    """Rename each *.pth that CKPT001 reported; its other findings follow it to the new name."""
    from ckpt_tool.lint.fix import rename_pth

    renamed: dict[str, str] = {}
    for path in dict.fromkeys(f.path for f in findings if f.code == "CKPT001"):
        outcome = rename_pth(path)
        print(f"ckpt: {outcome}", file=sys.stderr)
        if outcome.done:
            renamed[path] = outcome.target
    remaining = [dataclasses.replace(f, path=renamed.get(f.path, f.path)) for f in findings
                 if not (f.code == "CKPT001" and f.path in renamed)]
    return remaining, len(renamed)


def _summary(findings: list[Finding], file_count: int, changed: int, skipped: int) -> None:
    flagged = len({finding.path for finding in findings})
    fixed = f", {changed} fixed" if changed else ""
    if skipped:
        fixed += f", {skipped} other {'file' if skipped == 1 else 'files'} not checkpoints"
    if findings:
        noun = "finding" if len(findings) == 1 else "findings"
        print(f"ckpt lint: {len(findings)} {noun} in {flagged} of {file_count} files{fixed}",
              file=sys.stderr)
    else:
        files = "file" if file_count == 1 else "files"
        print(f"ckpt lint: {file_count} {files} checked, nothing to report{fixed}", file=sys.stderr)
