"""What lint, inspect and convert share for batch runs: ``--from-list``, ``--resume``,
``--storage-options``, and JSON lines written as each file finishes."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from ckpt_tool.cli.application import usage_error

FROM_LIST_HELP = "Also read paths or URLs from FILE, one a line (- for standard input)."
RESUME_HELP = ("With --format jsonl: skip the files RESULTS.jsonl (an earlier run's output) "
               "already holds a result for (not those that failed); append with >>.")
JOBS_HELP = ("Work on N files at once: worker processes for local files, threads for URLs "
             "(default 1).")
STORAGE_HELP = ("fsspec storage options for s3://, gs://, hf://... URLs, as a JSON object "
                "(e.g. '{\"anon\": true}'); 'headers' are sent with HTTP requests.")


def gather_paths(paths: list[str] | None, from_list: str | None) -> list[str]:
    """The command line's paths, then the list's; at least one."""
    from ckpt_tool.batch.lists import read_list
    from ckpt_tool.errors import ConfigError

    gathered = list(paths or [])
    if from_list is not None:
        try:
            gathered += read_list(from_list)
        except ConfigError as exc:
            usage_error(str(exc))
        if not gathered:
            usage_error(f"--from-list {from_list}: no paths in it")
    if not gathered:
        usage_error("give at least one PATH, or --from-list FILE")
    return gathered


def parse_storage_options(text: str | None) -> dict[str, Any]:
    import json

    if text is None:
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        usage_error(f"--storage-options takes a JSON object: {exc}")
    if not isinstance(value, dict):
        usage_error("--storage-options takes a JSON object, e.g. '{\"anon\": true}'")
    return value


def check_resume(resume: str | None, jsonl: bool) -> None:
    if resume is not None and not jsonl:
        usage_error("--resume goes with --format jsonl (a run whose results are appended "
                    "line by line)")


def resumed(command: str, resume: str | None, paths: list[str],
            is_done: Callable[[dict[str, Any]], bool], quiet: bool) -> list[str]:
    """``paths`` without those ``resume`` holds a result for; a note on stderr says how many."""
    if resume is None:
        return paths
    from ckpt_tool.batch.lists import done_paths, ends_mid_line
    from ckpt_tool.cli.output import write
    from ckpt_tool.errors import ConfigError
    from ckpt_tool.render.safe import printable

    try:
        done = done_paths(resume, is_done)
    except ConfigError as exc:
        usage_error(str(exc))
    remaining = [path for path in paths if path not in done]
    if not quiet and len(remaining) < len(paths):
        print(f"ckpt {command}: {len(paths) - len(remaining)} of {len(paths)} files already in "
              f"{printable(resume)}, skipped", file=sys.stderr)
    if ends_mid_line(resume, sys.stdout):
        write("\n")
    return remaining


def write_line(result: dict[str, Any]) -> None:
    """One result as one line of JSON, flushed at once (a reader sees each file as it ends)."""
    from ckpt_tool.cli.output import write
    from ckpt_tool.render.safe import json_text

    write(json_text(result) + "\n")


def ok_result(entry: dict[str, Any], key: str) -> bool:
    """A result line of this command (it has ``key``) that holds no error."""
    return key in entry and entry.get("error") is None
