"""``ckpt convert``: parse arguments, run the conversions, print what was written."""

from __future__ import annotations

import os
import sys
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
from ckpt_tool.cli.batch import FROM_LIST_HELP, RESUME_HELP
from ckpt_tool.convert.options import CastTo, ConvertOptions, ConvertResult, Target

if TYPE_CHECKING:
    from collections.abc import Callable

    from ckpt_tool.convert.jobs import Job


class ConvertFormat(str, Enum):
    text = "text"
    json = "json"
    jsonl = "jsonl"


_TO_HELP = ("Output format: safetensors (default), or a torch extension (pt, pth.tar, pwf, bin, "
            "ckpt).")
_OUTPUT_HELP = ("Output file (one source named here) or folder (several sources, or a folder's: "
                "its tree is kept below -o). Default: beside each source, with the new "
                "extension.")
_EPILOG = epilog(
    ["ckpt convert checkpoint.pth.tar                 # the weights, to safetensors",
     "ckpt convert model.pth --to pt --move           # fix CKPT001 (a .pth name)",
     "ckpt convert old.pt --to pt --rewrite -o new.pt # legacy format -> zip format",
     "ckpt convert ddp.pt --strip-prefix module. --dtype bf16 --shard-size 5GB",
     "ckpt convert runs/ -o converted/ --jobs 4       # keeps runs/'s tree below converted/",
     "ckpt convert --from-list todo.txt --format jsonl --resume o.jsonl >> o.jsonl"],
    {0: "every file was converted", 2: "a file failed (the others were still converted), or "
     "bad usage", **COMMON_EXIT_CODES})
_KEY_HELP = ("Convert the tensors under this dotted path (default: the usual weights root, such "
             "as state_dict).")


@app.command("convert", cls=Command, epilog=_EPILOG)
def convert_command(
    paths: list[str] | None = typer.Argument(
        None, metavar="SRC...", help="Checkpoint files, folders (walked; a DCP, DeepSpeed ZeRO or "
        "per-rank DTensor folder is one model), *.index.json, or URLs."),
    to: Target = typer.Option(Target.SAFETENSORS, "--to", metavar="FORMAT", help=_TO_HELP),
    output: str | None = typer.Option(None, "-o", "--output", metavar="DEST", help=_OUTPUT_HELP),
    key: str | None = typer.Option(None, "--key", metavar="PATH", help=_KEY_HELP),
    all_tensors: bool = typer.Option(
        False, "--all", help="Convert every tensor in the file, named by its dotted path."),
    include_optimizer: bool = typer.Option(
        False, "--include-optimizer",
        help="Also convert optimizer, scheduler and grad-scaler state (left out by default)."),
    strip_prefix: list[str] | None = typer.Option(
        None, "--strip-prefix", metavar="PREFIX",
        help="Remove this prefix from tensor names, e.g. module. (repeatable)."),
    rename: list[str] | None = typer.Option(
        None, "--rename", metavar="REGEX=REPLACEMENT",
        help="Applied to tensor names with re.sub (repeatable, in order)."),
    copy_shared: bool = typer.Option(
        False, "--copy-shared",
        help="Write tied weights under every name instead of recording aliases in the metadata."),
    skip_unsupported: bool = typer.Option(
        False, "--skip-unsupported",
        help="Leave out (and list) tensors safetensors cannot hold, instead of failing."),
    dtype: CastTo | None = typer.Option(
        None, "--dtype", metavar="DTYPE",
        help="Cast float16/bfloat16/float32/float64 tensors to bf16, fp16 or fp32."),
    shard_size: str | None = typer.Option(
        None, "--shard-size", metavar="SIZE",
        help="Split into HF-style shards of at most this size (5GB, 500MB), plus an index; "
        "'none': one file. Default: 5GB for a model in several files, else one file."),
    no_verify: bool = typer.Option(
        False, "--no-verify", help="Do not read the output back and compare it with the source."),
    force: bool = typer.Option(False, "--force", help="Replace destinations that exist."),
    move: bool = typer.Option(
        False, "--move", help="With a torch --to: rename the file instead of copying it."),
    rewrite: bool = typer.Option(
        False, "--rewrite", help="With a torch --to: rewrite a legacy (pre-1.6) file in torch's "
        "zip format."),
    jobs: int = typer.Option(
        1, "--jobs", "-j", min=1, metavar="N",
        help="Convert this many files at once, in worker processes."),
    quiet: bool = typer.Option(
        False, "--quiet", "-q", help="Print failures only; no progress bar, no summary."),
    as_json: bool = typer.Option(False, "--json", help="One JSON document on stdout "
                                 "(--format json)."),
    output_format: ConvertFormat = typer.Option(
        ConvertFormat.text, "--format", metavar="FORMAT",
        help="text (default: a line per file), json (one document) or jsonl (one result a "
        "line, as each file is done)."),
    from_list: str | None = typer.Option(None, "--from-list", metavar="FILE",
                                         help=FROM_LIST_HELP),
    resume: str | None = typer.Option(None, "--resume", metavar="RESULTS.jsonl",
                                      help=RESUME_HELP),
    exclude: list[str] | None = typer.Option(
        None, "--exclude", metavar="PATTERN",
        help="Patterns to pass over in folder walks, replacing the defaults (.git, .venv, "
        "node_modules, caches, site-packages...) (comma-separated, repeatable)."),
    extend_exclude: list[str] | None = typer.Option(
        None, "--extend-exclude", metavar="PATTERN",
        help="Patterns to pass over besides the defaults (comma-separated, repeatable)."),
    set_limit: list[str] | None = typer.Option(None, "--set-limit", metavar="NAME=VALUE",
                                               help=LIMIT_HELP),
) -> None:
    """Write a checkpoint in another format (safetensors by default); never changes the
    source."""
    from ckpt_tool.api.convert import convert_options
    from ckpt_tool.cli.batch import check_resume, gather_paths
    from ckpt_tool.cli.output import Timer, error_line
    from ckpt_tool.errors import ConfigError

    timer = Timer()
    if as_json:
        output_format = ConvertFormat.json
    check_resume(resume, output_format is ConvertFormat.jsonl)
    arguments = gather_paths(paths, from_list)
    try:
        options = convert_options(
            to=to, key=key, all_tensors=all_tensors, include_optimizer=include_optimizer,
            strip_prefix=tuple(strip_prefix or ()), rename=tuple(rename or ()),
            copy_shared=copy_shared, skip_unsupported=skip_unsupported, dtype=dtype,
            shard_size=shard_size, verify=not no_verify, force=force, move=move,
            rewrite=rewrite, limits=parse_limits(set_limit))
    except ConfigError as exc:
        usage_error(str(exc))
    failures, job_list = _plan_jobs(arguments, to, output,
                                    _walk_rules(arguments, exclude, extend_exclude))
    job_list = _resumed(job_list, resume, quiet)
    text = output_format is ConvertFormat.text
    stream = _stream_line if output_format is ConvertFormat.jsonl else None
    if stream:
        for failure in failures:
            stream(failure)
    results = _run(job_list, options, jobs, quiet or not text, stream)
    everything = failures + results
    for result in everything:
        if not result.ok:
            error_line(result.source, result.error or "failed")
    failed = any(not result.ok for result in everything)
    if output_format is ConvertFormat.json:
        from ckpt_tool.api.results import with_exit_code
        from ckpt_tool.cli.output import write
        from ckpt_tool.render.convert_json import convert_document
        from ckpt_tool.render.safe import json_text

        code = exitcodes.ERROR if failed else exitcodes.OK
        write(json_text(with_exit_code(convert_document(everything), code)) + "\n")
    if text and (not quiet or failed):
        from ckpt_tool.render.convert_text import summary_line

        print(f"ckpt convert: {summary_line(everything)} ({timer})", file=sys.stderr)
    if failed:
        raise typer.Exit(exitcodes.ERROR)


def _stream_line(result: ConvertResult) -> None:
    from ckpt_tool.api.convert import convert_result
    from ckpt_tool.cli.batch import write_line

    write_line(convert_result(result))


def _resumed(job_list: list[Job], resume: str | None, quiet: bool) -> list[Job]:
    from ckpt_tool.cli.batch import resumed

    wanted = set(resumed("convert", resume, [job.source for job in job_list],
                         lambda entry: "summary" in entry and entry.get("error") is None, quiet))
    return [job for job in job_list if job.source in wanted]


def _walk_rules(paths: list[str], exclude: list[str] | None, extend: list[str] | None):
    """How folders are walked; the configuration is read only when there is a folder to walk."""
    from ckpt_tool.discovery.walk import DEFAULT_RULES

    if not any(os.path.isdir(path) for path in paths):
        return DEFAULT_RULES
    from ckpt_tool.discovery.project import WalkFlags, find_project, walk_rules
    from ckpt_tool.errors import ConfigError
    from ckpt_tool.lint.config import split_commas

    flags = WalkFlags(tuple(split_commas(exclude)) if exclude else None,
                      tuple(split_commas(extend)))
    try:
        return walk_rules(find_project(os.getcwd()), flags)
    except ConfigError as exc:
        usage_error(str(exc))


def _plan_jobs(paths: list[str], to: Target, output: str | None,
               rules) -> tuple[list[ConvertResult], list[Job]]:
    from ckpt_tool.convert.destinations import destinations, is_folder_output
    from ckpt_tool.errors import ConversionError
    from ckpt_tool.inputs import expand_inputs

    items = expand_inputs(paths, rules)
    failures = [ConvertResult(item.path, error=item.error) for item in items if item.error]
    usable = [item for item in items if not item.error]
    sources = [item.path for item in usable]
    bases = [None if item.group == item.path else _base(item.group) for item in usable]
    models = [item.model is not None and (os.path.isdir(item.path)
                                          or item.path.endswith(".index.json")) for item in usable]
    try:
        dests = destinations(sources, to, output, bases, models)
    except ConversionError as exc:
        usage_error(str(exc))
    if output is not None and is_folder_output(sources, output, bases):
        _make_output_folders(output, dests)
    from ckpt_tool.convert.jobs import Job

    pairs = zip(sources, dests, strict=True)
    return failures, [Job(source, dest, _size(source)) for source, dest in pairs]


def _base(group: str | None) -> str | None:
    """The folder a walked file's place is kept relative to: the folder walked, or the index's."""
    if group is None:
        return None
    return group if os.path.isdir(group) else os.path.dirname(group) or "."


def _make_output_folders(output: str, dests: list[str]) -> None:
    """The folder ``-o`` names, and the sub-folders that mirror the sources' tree, made if need
    be."""
    if os.path.exists(output) and not os.path.isdir(output):
        usage_error(f"-o {output} is a file, not a folder: give a folder for several sources")
    for folder in dict.fromkeys([output, *(os.path.dirname(dest) for dest in dests)]):
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as exc:
            usage_error(f"-o {output}: cannot make the folder {folder}: {exc.strerror or exc}")


def _size(path: str) -> int:
    """The bytes of a file, or of every file under a folder; 0 when unknown (a URL)."""
    try:
        if os.path.isdir(path):
            return sum(os.path.getsize(os.path.join(folder, name))
                       for folder, _, names in os.walk(path) for name in names)
        return os.path.getsize(path)
    except OSError:
        return 0


def _run(job_list: list[Job], options: ConvertOptions, workers: int, quiet: bool,
         stream: Callable[[ConvertResult], None] | None = None) -> list[ConvertResult]:
    """Convert every job; ``stream`` is given each result as soon as it is done."""
    from ckpt_tool.cli.output import Bar, write
    from ckpt_tool.convert.jobs import ByteProgress, run_jobs
    from ckpt_tool.render.convert_text import result_lines

    scale = ByteProgress(job_list)
    finished = 0
    with Bar("converting", scale.total, enabled=not quiet, count=len(job_list)) as bar:

        def on_progress(index: int, done: int, total: int, label: str | None = None) -> None:
            bar.file(job_list[index].source, finished + 1, label)
            bar.advance(scale.advance(index, done, total))

        def on_result(index: int, result: ConvertResult) -> None:
            nonlocal finished
            finished += 1
            bar.advance(scale.complete(index))
            if stream is not None:
                stream(result)
            elif result.ok and not quiet:
                write("\n".join(result_lines(result)) + "\n")

        return run_jobs(job_list, options, workers, on_progress if bar.enabled else None,
                        on_result)
