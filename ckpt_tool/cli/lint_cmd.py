"""``ckpt lint``: parse arguments, lint every file, print the report, pick the exit code.

Exit codes: 0 nothing reported (or ``--exit-zero``, or no checkpoint file found, with a warning),
1 findings (or ``--fix`` changed a file), 2 usage or internal error. A file that cannot be read
is a finding (CKPT006); the other files are still checked.
"""

from __future__ import annotations

import os
import sys

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
from ckpt_tool.cli.batch import FROM_LIST_HELP, JOBS_HELP, RESUME_HELP, STORAGE_HELP
from ckpt_tool.lint.findings import Finding
from ckpt_tool.lint.formats import OutputFormat

_EPILOG = epilog(
    ["ckpt lint models/                      # every checkpoint below models/",
     "ckpt lint --output-format full x.pt    # the whole explanation of each finding",
     "ckpt lint --statistics --exit-zero .   # counts per rule, never fail",
     "ckpt lint --format sarif . > ckpt.sarif",
     "ckpt lint --fix .                      # rename *.pth checkpoints to *.pt",
     "ckpt lint --show-files .               # which files would be checked",
     "ckpt lint --from-list urls.txt --format jsonl -j 8 --resume o.jsonl >> o.jsonl",
     "ckpt rule CKPT002                      # what a rule means"],
    {0: "nothing reported (also: --exit-zero, or no checkpoint file found: a warning)",
     1: "findings (an unreadable file is one), or --fix changed a file",
     2: "bad usage (unknown rule, bad configuration), or an internal error on a file",
     **COMMON_EXIT_CODES})


@app.command("lint", cls=Command, epilog=_EPILOG)
def lint_command(
    paths: list[str] | None = typer.Argument(
        None, metavar="PATH...", help="Checkpoint files, folders (walked) or URLs (a remote "
        "folder or repository is listed)."),
    output_format: OutputFormat = typer.Option(
        OutputFormat.CONCISE, "--output-format", "--format", metavar="FORMAT",
        help="concise (default: one short line per finding), full (the whole message), json, "
        "jsonl (one result a line, as each file is done), github (workflow annotations) or "
        "sarif (SARIF 2.1.0 for code scanning)."),
    from_list: str | None = typer.Option(None, "--from-list", metavar="FILE",
                                         help=FROM_LIST_HELP),
    jobs: int = typer.Option(1, "--jobs", "-j", min=1, metavar="N", help=JOBS_HELP),
    resume: str | None = typer.Option(None, "--resume", metavar="RESULTS.jsonl",
                                      help=RESUME_HELP),
    storage_options: str | None = typer.Option(None, "--storage-options", metavar="JSON",
                                               help=STORAGE_HELP),
    select: list[str] | None = typer.Option(
        None, "--select", metavar="CODES",
        help="Rules to check: codes, prefixes, slugs or ALL (comma-separated, repeatable); "
        "replaces the configured selection."),
    ignore: list[str] | None = typer.Option(
        None, "--ignore", metavar="CODES",
        help="Rules not to check (comma-separated, repeatable)."),
    fix: bool = typer.Option(
        False, "--fix", help="Rename *.pth checkpoints to *.pt (git mv for tracked files)."),
    unsafe_fixes: bool = typer.Option(
        False, "--unsafe-fixes",
        help="With --fix, also rename files a known producer reads back by name "
        "(rng_state.pth).",
    ),
    statistics: bool = typer.Option(
        False, "--statistics", help="Print the number of findings per rule instead of them."),
    exit_zero: bool = typer.Option(
        False, "--exit-zero", help="Exit 0 even when something is reported."),
    quiet: bool = typer.Option(
        False, "--quiet", "-q", help="Print the findings and nothing else (no summary, no "
        "warnings)."),
    show_files: bool = typer.Option(
        False, "--show-files", help="List the files that would be checked, and what the walk "
        "passed over, then exit."),
    exclude: list[str] | None = typer.Option(
        None, "--exclude", metavar="PATTERN",
        help="Patterns to pass over in folder walks, replacing the defaults (.git, .venv, "
        "node_modules, caches, site-packages...) (comma-separated, repeatable)."),
    extend_exclude: list[str] | None = typer.Option(
        None, "--extend-exclude", metavar="PATTERN",
        help="Patterns to pass over besides the defaults (comma-separated, repeatable)."),
    respect_gitignore: bool | None = typer.Option(
        None, "--respect-gitignore/--no-respect-gitignore",
        help="Pass over files .gitignore ignores (default; tracked files are always checked)."),
    force_exclude: bool | None = typer.Option(
        None, "--force-exclude/--no-force-exclude",
        help="Apply the excludes to files named on the command line too (the pre-commit hook "
        "does)."),
    set_limit: list[str] | None = typer.Option(None, "--set-limit", metavar="NAME=VALUE",
                                               help=LIMIT_HELP),
) -> None:
    """Check checkpoint files for code, unsafe names and formats, without loading them."""
    from ckpt_tool.cli.batch import check_resume, gather_paths, parse_storage_options
    from ckpt_tool.cli.output import Timer, colour, error_line, write
    from ckpt_tool.containers.remote import RemoteOptions
    from ckpt_tool.discovery.project import WalkFlags, find_project, walk_rules
    from ckpt_tool.errors import ConfigError
    from ckpt_tool.lint import load_config
    from ckpt_tool.lint.config import split_commas
    from ckpt_tool.lint.formats import render
    from ckpt_tool.lint.paths import collect_paths

    timer = Timer()
    jsonl = output_format is OutputFormat.JSONL
    check_resume(resume, jsonl)
    if jsonl and (fix or statistics):
        usage_error(f"{'--fix' if fix else '--statistics'} needs every file's findings first: "
                    "not with --format jsonl")
    arguments = gather_paths(paths, from_list)
    limits = parse_limits(set_limit)
    remote = RemoteOptions(parse_storage_options(storage_options))
    flags = WalkFlags(tuple(split_commas(exclude)) if exclude else None,
                      tuple(split_commas(extend_exclude)), respect_gitignore, force_exclude)
    try:
        project = find_project(os.getcwd())
        config = load_config(os.getcwd(), split_commas(select), split_commas(ignore), project)
        rules = walk_rules(project, flags, config.exclude)
    except ConfigError as exc:
        usage_error(str(exc))
    selection = collect_paths(arguments, rules, remote)
    if show_files:
        _show_files(selection, quiet)
        raise typer.Exit(exitcodes.OK)
    if not selection.files and not quiet:
        _warn_nothing_checked(arguments, selection)
    results = _lint_files(selection, config, limits, remote, jobs, resume, quiet, jsonl)
    errors = [result for result in results if result["error"] is not None]
    for result in errors:
        error_line(result["path"], result["error"]["message"])
    findings = [Finding.from_dict(entry) for result in results for entry in result["findings"]]
    renamed: list[tuple[str, str]] = []
    if fix:
        findings, renamed = _apply_fixes(findings, unsafe_fixes, quiet)
    failed = bool(findings or renamed) and not exit_zero
    code = exitcodes.ERROR if errors else exitcodes.FINDINGS if failed else exitcodes.OK
    if statistics:
        _print_statistics(findings, output_format)
    elif not jsonl:
        document = None
        if output_format is OutputFormat.JSON:
            from ckpt_tool.api.results import with_exit_code
            from ckpt_tool.lint.report import lint_document

            reads = [read for result in results for read in result["reads"]]
            document = with_exit_code(lint_document(findings, selection, renamed, reads), code)
        write(render(findings, output_format, colour(sys.stdout), document))
    if output_format.is_text and not quiet:
        _summary(findings, selection, len(renamed), str(timer))
    raise typer.Exit(code)


def _lint_files(selection, config, limits, remote, jobs: int, resume: str | None, quiet: bool,
                jsonl: bool) -> list[dict]:
    """``lint_one`` of every selected file (``jobs`` at a time), in the selection's order;
    with ``jsonl``, each result is written as soon as it is done."""
    from functools import partial

    from ckpt_tool.api.lint import lint_failure, lint_one
    from ckpt_tool.batch.runner import Task, run_tasks
    from ckpt_tool.cli.batch import ok_result, resumed, write_line

    files = resumed("lint", resume, selection.files,
                    lambda entry: ok_result(entry, "findings"), quiet)
    tasks = [Task(path, {"size": selection.sizes.get(path)}) for path in files]
    function = partial(lint_one, config=config, limits=limits,
                       storage_options=dict(remote.storage_options))
    results: list[dict | None] = [None] * len(tasks)
    for index, result in run_tasks(function, tasks, jobs, lint_failure):
        if jsonl:
            write_line(result)
        results[index] = result
    return [result for result in results if result is not None]


def _show_files(selection, quiet: bool) -> None:
    from ckpt_tool.cli.output import write
    from ckpt_tool.render.safe import printable

    write("".join(printable(path) + "\n" for path in selection.files))
    if quiet:
        return
    for item in selection.excluded:
        print(f"ckpt lint: passed over {printable(item.path)}: {item.reason}", file=sys.stderr)
    for path, reason in selection.skipped:
        print(f"ckpt lint: not checked {printable(path)}: {reason}", file=sys.stderr)
    print(f"ckpt lint: {_files(len(selection.files))} to check", file=sys.stderr)


def _warn_nothing_checked(paths: list[str], selection) -> None:
    from ckpt_tool.discovery.walk import gitignore_hint
    from ckpt_tool.render.safe import printable

    where = ", ".join(printable(path) for path in paths[:3]) + (" ..." if len(paths) > 3 else "")
    passed = []
    if selection.skipped:
        passed.append(f"{_files(len(selection.skipped))} that are not checkpoints")
    excluded = [item for item in selection.excluded if not item.gitignored]
    if excluded:
        passed.append(f"{len(excluded)} excluded {'path' if len(excluded) == 1 else 'paths'}")
    detail = f" (passed over {' and '.join(passed)}; --show-files lists them)" if passed else ""
    print(f"ckpt lint: warning: no checkpoint files to check in {where}{detail}"
          f"{gitignore_hint(selection.excluded)}", file=sys.stderr)


def _files(count: int) -> str:
    return f"{count} {'file' if count == 1 else 'files'}"


def _apply_fixes(findings: list[Finding], unsafe: bool,
                 quiet: bool) -> tuple[list[Finding], list[tuple[str, str]]]:
    """Rename each *.pth that CKPT001 reported (not those a producer reads back by name, unless
    ``unsafe``); its other findings follow it to the new name."""
    from ckpt_tool.lint.fix import rename_pth
    from ckpt_tool.render.safe import printable

    renamed: dict[str, str] = {}
    for finding in findings:
        if finding.code != "CKPT001" or finding.path in renamed:
            continue
        if finding.read_back_by and not unsafe:
            if not quiet:
                print(f"ckpt: not renamed {printable(finding.path)}: {finding.read_back_by} "
                      "reads it back by this name (--unsafe-fixes renames it anyway)",
                      file=sys.stderr)
            continue
        outcome = rename_pth(finding.path)
        if not quiet or not outcome.done:
            print(f"ckpt: {printable(str(outcome))}", file=sys.stderr)
        if outcome.done:
            renamed[finding.path] = outcome.target
    remaining = [f.replace(path=renamed.get(f.path, f.path)) for f in findings
                 if not (f.code == "CKPT001" and f.path in renamed)]
    return remaining, list(renamed.items())


def _print_statistics(findings: list[Finding], output_format: OutputFormat) -> None:
    from ckpt_tool.cli.output import write
    from ckpt_tool.lint.report import statistics

    rows = statistics(findings)
    if output_format is OutputFormat.JSON:
        import json

        write(json.dumps(rows, indent=2) + "\n")
        return
    width = max((len(str(row["count"])) for row in rows), default=1)
    lines = []
    for row in rows:
        fixable = f"  [{row['fixable']} fixable]" if row["fixable"] else ""
        lines.append(f"{row['count']:>{width}}  {row['code']}  {row['rule']}{fixable}")
    write("".join(line + "\n" for line in lines))


def _summary(findings: list[Finding], selection, changed: int, elapsed: str) -> None:
    file_count = len(selection.files)
    flagged = len({finding.path for finding in findings})
    extra = f", {changed} fixed" if changed else ""
    skipped = len(selection.skipped)
    if skipped:
        extra += f", {skipped} other {'file' if skipped == 1 else 'files'} not checkpoints"
    if findings:
        noun = "finding" if len(findings) == 1 else "findings"
        text = f"{len(findings)} {noun} in {flagged} of {file_count} files{extra}"
    else:
        text = f"{_files(file_count)} checked, nothing to report{extra}"
    from ckpt_tool.cli.output import summary_line

    summary_line("lint", f"{text} ({elapsed})")
