"""``ckpt convert``: parse arguments, run the conversions, print what was written."""

from __future__ import annotations

import os
import re
import sys
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
from ckpt_tool.convert.options import CastTo, ConvertOptions, ConvertResult, Target

if TYPE_CHECKING:
    from ckpt_tool.convert.jobs import Job


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
     "ckpt convert runs/ -o converted/ --jobs 4       # keeps runs/'s tree below converted/"],
    {0: "every file was converted", 2: "a file failed (the others were still converted), or "
     "bad usage", **COMMON_EXIT_CODES})
_KEY_HELP = ("Convert the tensors under this dotted path (default: the usual weights root, such "
             "as state_dict).")


@app.command("convert", cls=Command, epilog=_EPILOG)
def convert_command(
    paths: list[str] = typer.Argument(
        ..., metavar="SRC...", help="Checkpoint files, folders (walked; a DCP, DeepSpeed ZeRO or "
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
    from ckpt_tool.cli.output import Timer, error_line

    timer = Timer()
    options = ConvertOptions(
        target=to, key=key, all_tensors=all_tensors, include_optimizer=include_optimizer,
        strip_prefixes=tuple(strip_prefix or ()),
        renames=tuple(_parse_rename(text) for text in rename or ()),
        copy_shared=copy_shared, skip_unsupported=skip_unsupported, cast=dtype,
        shard_size=_parse_shard_size(shard_size), verify=not no_verify, force=force, move=move,
        rewrite=rewrite, limits=parse_limits(set_limit))
    _check_combinations(options)
    failures, job_list = _plan_jobs(paths, to, output, _walk_rules(paths, exclude, extend_exclude))
    results = _run(job_list, options, jobs, quiet)
    for result in failures + results:
        if not result.ok:
            error_line(result.source, result.error or "failed")
    everything = failures + results
    failed = any(not result.ok for result in everything)
    if not quiet or failed:
        from ckpt_tool.render.convert_text import summary_line

        print(f"ckpt convert: {summary_line(everything)} ({timer})", file=sys.stderr)
    if failed:
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


def _run(job_list: list[Job], options: ConvertOptions, workers: int,
         quiet: bool) -> list[ConvertResult]:
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
            if result.ok and not quiet:
                write("\n".join(result_lines(result)) + "\n")

        return run_jobs(job_list, options, workers, on_progress if bar.enabled else None,
                        on_result)
