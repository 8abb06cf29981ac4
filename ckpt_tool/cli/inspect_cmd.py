"""``ckpt inspect``: parse arguments, read, render."""

from __future__ import annotations

import os
from enum import Enum
from typing import TYPE_CHECKING

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

if TYPE_CHECKING:
    from ckpt_tool.cli.output import Bar
    from ckpt_tool.inspect.report import FileReport


class SortKey(str, Enum):
    name = "name"
    size = "size"
    file = "file"


class InspectFormat(str, Enum):
    rich = "rich"
    json = "json"
    jsonl = "jsonl"


_EPILOG = epilog(
    ["ckpt inspect model.pth.tar                 # summary, structure, values, tensors",
     "ckpt inspect checkpoints/                  # one row per file (-v: every file in full)",
     "ckpt inspect model.safetensors.index.json  # every shard",
     "ckpt inspect --stats --filter '*.weight' m.pt",
     "ckpt inspect --json m.pt | jq '.files[0].parameter_count'",
     "ckpt inspect --format jsonl --jobs 8 --from-list urls.txt > out.jsonl"],
    {0: "every file was read", 2: "a file could not be read (the others are still shown), or "
     "bad usage", **COMMON_EXIT_CODES})


@app.command("inspect", cls=Command, epilog=_EPILOG)
def inspect_command(
    paths: list[str] | None = typer.Argument(
        None, metavar="PATH...", help="Checkpoint files, folders (walked), *.index.json or URLs "
        "(a remote folder or repository is listed)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON document on stdout "
                                 "(--format json)."),
    output_format: InspectFormat = typer.Option(
        InspectFormat.rich, "--format", metavar="FORMAT",
        help="rich (default: the view), json (one document) or jsonl (one result a line, as "
        "each file is done)."),
    from_list: str | None = typer.Option(None, "--from-list", metavar="FILE",
                                         help=FROM_LIST_HELP),
    jobs: int = typer.Option(1, "--jobs", "-j", min=1, metavar="N",
                             help=JOBS_HELP + " Goes with --format json or jsonl."),
    resume: str | None = typer.Option(None, "--resume", metavar="RESULTS.jsonl",
                                      help=RESUME_HELP),
    storage_options: str | None = typer.Option(None, "--storage-options", metavar="JSON",
                                               help=STORAGE_HELP),
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
    from ckpt_tool.cli.batch import check_resume, gather_paths, parse_storage_options
    from ckpt_tool.cli.output import Timer, summary_line
    from ckpt_tool.containers.remote import RemoteOptions
    from ckpt_tool.discovery.walk import Passed
    from ckpt_tool.inputs import expand_inputs

    timer = Timer()
    if as_json:
        output_format = InspectFormat.json
    check_resume(resume, output_format is InspectFormat.jsonl)
    if jobs > 1 and output_format is InspectFormat.rich:
        usage_error("--jobs goes with --format json or jsonl (the view is drawn in this "
                    "process)")
    arguments = gather_paths(paths, from_list)
    limits = parse_limits(set_limit)
    remote = RemoteOptions(parse_storage_options(storage_options))
    rules = _walk_rules(arguments, exclude, extend_exclude, respect_gitignore)
    passed: list[Passed] = []
    items = expand_inputs(arguments, rules, passed, remote)
    if show_files:
        _show_files([item.path for item in items if not item.error], passed, quiet)
        raise typer.Exit(exitcodes.OK)
    if stats:
        _require_numpy()
    query = {"stats": stats, "pattern": pattern, "sort": sort.value, "limit": limit}
    if output_format is InspectFormat.rich:
        results = _inspect_here(items, limits, remote, query, quiet)
        failed = [report.path for report, _ in results if not report.ok]
        root = _walked_root(items, arguments)
        full = verbose or len(results) == 1 or stats or pattern is not None or limit is not None
        _show(results, [item.shard_of for item in items], full, expand, not no_tree, root)
        if not quiet:
            from ckpt_tool.discovery.walk import gitignore_hint

            reports = [report for report, _ in results]
            summary_line("inspect", _summary(reports, str(timer), gitignore_hint(passed)))
    else:
        documents = _inspect_batch(items, limits, remote, query, jobs, resume, quiet,
                                   output_format is InspectFormat.jsonl)
        failed = [document["path"] for document in documents if document["error"]]
        if output_format is InspectFormat.json:
            from ckpt_tool.api.results import with_exit_code
            from ckpt_tool.cli.output import write
            from ckpt_tool.render.inspect_json import merge_documents, render_document

            code = exitcodes.ERROR if failed else exitcodes.OK
            write(render_document(with_exit_code(merge_documents(documents), code)) + "\n")
    if failed:
        raise typer.Exit(exitcodes.ERROR)


def _walked_root(items: list, arguments: list[str]) -> str | None:
    groups = {item.group for item in items}
    if len(groups) == 1 and len(arguments) == 1 and os.path.isdir(arguments[0]):
        return groups.pop()
    return None


def _inspect_here(items: list, limits, remote, query: dict, quiet: bool) -> list:
    """The reports the view draws, one file after another (statistics under a progress bar)."""
    from ckpt_tool.api.inspect import add_stats, inspect_report
    from ckpt_tool.cli.output import Bar, error_line
    from ckpt_tool.containers.remote import RemoteOptions
    from ckpt_tool.inspect.report import FileReport

    results = []
    with Bar("statistics", enabled=query["stats"] and not quiet) as bar:
        for item in items:
            if item.error:
                report, rows = FileReport(item.path, error=item.error), []
            else:
                options = RemoteOptions(remote.storage_options, item.size)
                report, rows = inspect_report(item.path, limits, options, False,
                                              query["pattern"], query["sort"], query["limit"])
            if query["stats"] and report.ok:
                _add_stats(report, rows, bar, add_stats)
            if report.error:
                error_line(report.path, report.error)
            results.append((report, rows))
    return results


def _inspect_batch(items: list, limits, remote, query: dict, jobs: int, resume: str | None,
                   quiet: bool, jsonl: bool) -> list[dict]:
    """``inspect_one`` of every file (``jobs`` at a time), in the inputs' order; with ``jsonl``,
    each result is written as soon as it is done."""
    from functools import partial

    from ckpt_tool.api.inspect import inspect_one, inspect_result
    from ckpt_tool.batch.runner import Task, run_tasks
    from ckpt_tool.cli.batch import ok_result, resumed, write_line
    from ckpt_tool.cli.output import error_line
    from ckpt_tool.inspect.report import FileReport

    wanted = set(resumed("inspect", resume, [item.path for item in items],
                         lambda entry: ok_result(entry, "total"), quiet))
    items = [item for item in items if item.path in wanted]
    results: list[dict | None] = [None] * len(items)

    def done(index: int, result: dict) -> None:
        if result["error"]:
            error_line(result["path"], result["error"]["message"])
        if jsonl:
            write_line(result)
        results[index] = result

    runnable = []
    for index, item in enumerate(items):
        if item.error:
            done(index, inspect_result(FileReport(item.path, error=item.error), [], item.shard_of))
        else:
            runnable.append(index)
    tasks = [Task(items[i].path, {"size": items[i].size, "model": items[i].shard_of})
             for i in runnable]
    function = partial(inspect_one, limits=limits,
                       storage_options=dict(remote.storage_options), **query)
    failed = partial(_failed_result, FileReport)
    for position, result in run_tasks(function, tasks, jobs, failed):
        done(runnable[position], result)
    return [result for result in results if result is not None]


def _failed_result(report_type, path: str, message: str) -> dict:
    from ckpt_tool.api.inspect import inspect_result

    return inspect_result(report_type(path, error=message), [])


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


def _add_stats(report: FileReport, rows: list, bar: Bar, add_stats) -> None:
    """``add_stats`` under the progress bar."""
    bar.total += sum(row.tensor.nbytes for row in rows)
    bar.update(bar.done, bar.total, report.path)
    add_stats(report, rows, bar.advance)
