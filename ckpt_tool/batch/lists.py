"""The lists a batch run reads: ``--from-list FILE`` (paths or URLs, one a line) and
``--resume RESULTS.jsonl`` (the results of an earlier run, one JSON object a line)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any, TextIO

from ckpt_tool.errors import ConfigError


def read_list(name: str, stdin: TextIO | None = None) -> list[str]:
    """Paths or URLs, one a line (``-``: standard input); blank lines are passed over and
    whitespace around each line dropped."""
    try:
        if name == "-":
            text = (stdin or sys.stdin).read()
        else:
            with open(name, encoding="utf-8") as f:
                text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ConfigError(f"--from-list {name}: {reason}") from None
    return [line.strip() for line in text.splitlines() if line.strip()]


def done_paths(name: str, is_done: Callable[[dict[str, Any]], bool]) -> set[str]:
    """The ``path`` of every line of ``name`` that ``is_done`` accepts. A missing file is an
    empty one (the first run of a loop); a line that is not a JSON object (the last line of an
    interrupted run) is passed over, so that its file is done again."""
    import json

    try:
        with open(name, encoding="utf-8", errors="replace") as f:
            lines = f.readlines()
    except FileNotFoundError:
        return set()
    except OSError as exc:
        raise ConfigError(f"--resume {name}: {exc.strerror or exc}") from None
    done = set()
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and isinstance(entry.get("path"), str) and is_done(entry):
            done.add(entry["path"])
    return done


def ends_mid_line(name: str, stream: TextIO) -> bool:
    """``stream`` appends to ``name`` (``>> RESULTS.jsonl``) and its last line was cut short:
    a newline must come first, or the next result would be glued to it."""
    try:
        target, written = os.stat(name), os.fstat(stream.fileno())
        if (target.st_dev, target.st_ino) != (written.st_dev, written.st_ino):
            return False
        if target.st_size == 0:
            return False
        with open(name, "rb") as f:
            f.seek(-1, os.SEEK_END)
            return f.read(1) != b"\n"
    except (OSError, ValueError, AttributeError):
        return False
