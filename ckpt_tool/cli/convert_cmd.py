"""``ckpt convert``: parse arguments, run the conversions, print what was written."""

from __future__ import annotations

import os
import re
import sys
from typing import TYPE_CHECKING

import typer

from ckpt_tool import exitcodes
from ckpt_tool.cli.app import LIMIT_HELP, app, interactive, parse_limits, report_error, usage_error
from ckpt_tool.convert.options import CastTo, ConvertOptions, ConvertResult, Target

if TYPE_CHECKING:
    from ckpt_tool.convert.jobs import Job, OnResult


_TO_HELP = "Output format: safetensors, or a torch extension (pt, pth.tar, pwf, bin, ckpt)."
_OUTPUT_HELP = ("Output file (one source) or folder. Default: beside each source, with the new "
                "extension.")
_KEY_HELP = ("Convert the tensors under this dotted path (default: the usual weights root, such "
             "as state_dict).")


@app.command("convert")
def convert_command(
    paths: list[str] = typer.Argument(
        ..., help="Checkpoint files, folders (a DCP, DeepSpeed ZeRO or per-rank DTensor folder is "
        "one model), *.index.json, or URLs."),
    to: Target = typer.Option(..., "--to", help=_TO_HELP),
    output: str | None = typer.Option(None, "-o", "--output", help=_OUTPUT_HELP),
    key: str | None = typer.Option(None, "--key", help=_KEY_HELP),
    all_tensors: bool = typer.Option(
        False, "--all", help="Convert every tensor in the file, named by its dotted path."),
    include_optimizer: bool = typer.Option(
        False, "--include-optimizer",
        help="Also convert optimizer, scheduler and grad-scaler state (left out by default)."),
    strip_prefix: list[str] | None = typer.Option(
        None, "--strip-prefix", help="Remove this prefix from tensor names, e.g. module. "
        "(repeatable)."),
    rename: list[str] | None = typer.Option(
        None, "--rename", help="REGEX=REPLACEMENT, applied to tensor names with re.sub "
        "(repeatable, in order)."),
    copy_shared: bool = typer.Option(
        False, "--copy-shared",
        help="Write tied weights under every name instead of recording aliases in the metadata."),
    skip_unsupported: bool = typer.Option(
        False, "--skip-unsupported",
        help="Leave out (and list) tensors safetensors cannot hold, instead of failing."),
    dtype: CastTo | None = typer.Option(
        None, "--dtype", help="Cast float16/bfloat16/float32/float64 tensors to this dtype."),
    shard_size: str | None = typer.Option(
        None, "--shard-size",
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
        1, "--jobs", "-j", min=1, help="Convert this many files at once, in worker processes."),
    quiet: bool = typer.Option(
        False, "--quiet", "-q", help="Print failures only; no progress bar."),
    set_limit: list[str] | None = typer.Option(None, "--set-limit", help=LIMIT_HELP),
) -> None:
    """Write a checkpoint in another format; never changes the source. Exit 0: all converted,
    2: any failed."""
    options = ConvertOptions(
        target=to, key=key, all_tensors=all_tensors, include_optimizer=include_optimizer,
        strip_prefixes=tuple(strip_prefix or ()),
        renames=tuple(_parse_rename(text) for text in rename or ()),
        copy_shared=copy_shared, skip_unsupported=skip_unsupported, cast=dtype,
        shard_size=_parse_shard_size(shard_size), verify=not no_verify, force=force, move=move,
        rewrite=rewrite, limits=parse_limits(set_limit))
    _check_combinations(options)
    failures, job_list = _plan_jobs(paths, to, output)
    results = _run(job_list, options, jobs, quiet)
    for result in failures + results:
        if not result.ok:
            report_error(result.source, result.error or "failed")
    everything = failures + results
    if len(everything) > 1 or failures or any(not r.ok for r in results):
        from ckpt_tool.render.convert_text import summary_line

        print(f"ckpt: {summary_line(everything)}", file=sys.stderr)
    if any(not result.ok for result in everything):
        raise typer.Exit(exitcodes.ERROR)


def _parse_rename(text: str) -> tuple[str, str]:
    """Split REGEX=REPLACEMENT at the first ``=`` that leaves a valid regex (``(?<=x)`` has one)."""
    for match in re.finditer("=", text):
        pattern = text[: match.start()]
        try:
            re.compile(pattern)
        except re.error:
            continue
        if pattern:
            return pattern, text[match.end():]
    usage_error(f"--rename takes REGEX=REPLACEMENT, got {text!r}")


def _parse_shard_size(text: str | None) -> int | None:
    """Bytes; 0 for ``none`` (one file); None when not given (the default applies)."""
    if text is None:
        return None
    if text.strip().lower() == "none":
        return 0
    from ckpt_tool.render.units import parse_size

    try:
        size = parse_size(text)
    except ValueError:
        usage_error(f"--shard-size: not a size: {text!r} (try 5GB or 500MB)")
    if size <= 0:
        usage_error("--shard-size must be more than 0")
    return size


def _check_combinations(options: ConvertOptions) -> None:
    if options.target is Target.SAFETENSORS and (options.move or options.rewrite):
        usage_error("--move and --rewrite go with a torch --to (pt, pth.tar, pwf, bin, ckpt)")
    if options.move and options.rewrite:
        usage_error("--move renames the file as it is; --rewrite writes a new one: pick one")
    safetensors_only = {"--key": options.key, "--all": options.all_tensors,
                        "--include-optimizer": options.include_optimizer,
                        "--strip-prefix": options.strip_prefixes, "--rename": options.renames,
                        "--copy-shared": options.copy_shared,
                        "--skip-unsupported": options.skip_unsupported, "--dtype": options.cast,
                        "--shard-size": options.shard_size}
    used = [name for name, value in safetensors_only.items() if value]
    if options.target is not Target.SAFETENSORS and used:
        usage_error(f"{', '.join(used)} go with --to safetensors")
    if options.key is not None and options.all_tensors:
        usage_error("--key and --all both choose what to convert: pick one")


def _plan_jobs(paths: list[str], to: Target,
               output: str | None) -> tuple[list[ConvertResult], list[Job]]:
    from ckpt_tool.convert.destinations import destinations
    from ckpt_tool.errors import ConversionError
    from ckpt_tool.inputs import expand_inputs

    items = expand_inputs(paths)
    failures = [ConvertResult(item.path, error=item.error) for item in items if item.error]
    good = [item for item in items if not item.error]
    sources = [item.path for item in good]
    models = [item.model is not None and (os.path.isdir(item.path)
                                          or item.path.endswith(".index.json")) for item in good]
    try:
        dests = destinations(sources, to, output, models)
    except ConversionError as exc:
        usage_error(str(exc))
    if output is not None and len(sources) > 1:
        _make_output_folder(output)
    from ckpt_tool.convert.jobs import Job

    pairs = zip(sources, dests, strict=True)
    return failures, [Job(source, dest, _size(source)) for source, dest in pairs]


def _make_output_folder(output: str) -> None:
    """Several sources are written into the folder ``-o`` names, made if need be."""
    if os.path.exists(output) and not os.path.isdir(output):
        usage_error(f"-o {output} is a file, not a folder: give a folder for several sources")
    try:
        os.makedirs(output, exist_ok=True)
    except OSError as exc:
        usage_error(f"-o {output}: cannot make the folder: {exc.strerror or exc}")


def _size(path: str) -> int:
    """The bytes of a file, or of every file under a folder; 0 when unknown (a URL)."""
    try:
        if os.path.isdir(path):
            return sum(os.path.getsize(os.path.join(folder, name))
                       for folder, _, names in os.walk(path) for name in names)
        return os.path.getsize(path)
    except OSError:
        return 0


def _run(job_list: list[Job], options: ConvertOptions, workers: int,
         quiet: bool) -> list[ConvertResult]:
    from ckpt_tool.convert.jobs import run_jobs

    def show(_: int, result: ConvertResult) -> None:
        if result.ok and not quiet:
            from ckpt_tool.render.convert_text import result_lines

            print("\n".join(result_lines(result)), flush=True)

    if quiet or not interactive() or not job_list:
        return run_jobs(job_list, options, workers, on_result=show)
    return _run_with_bar(job_list, options, workers, show)


def _short(label: str, width: int = 40) -> str:
    """The tensor being written, its end kept when the name is long."""
    return label if len(label) <= width else "..." + label[-(width - 3):]


def _run_with_bar(job_list: list[Job], options: ConvertOptions, workers: int,
                  show: OnResult) -> list[ConvertResult]:
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    from ckpt_tool.cli.app import stderr_console
    from ckpt_tool.convert.jobs import ByteProgress, run_jobs

    scale = ByteProgress(job_list)
    columns = (TextColumn("converting"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
               TimeRemainingColumn(), TextColumn("{task.description}"))
    with Progress(*columns, console=stderr_console(), transient=True) as progress:
        task = progress.add_task("", total=scale.total)

        def on_progress(index: int, done: int, total: int, label: str | None) -> None:
            step = scale.advance(index, done, total)
            progress.update(task, total=scale.total, description=_short(label or ""))
            progress.advance(task, step)

        def on_result(index: int, result: ConvertResult) -> None:
            progress.advance(task, scale.complete(index))
            show(index, result)

        return run_jobs(job_list, options, workers, on_progress, on_result)
