"""Turn command-line paths into the files to read: files as given, directories walked (without
following symlinked folders, so a link loop cannot trap the walk), HF ``*.index.json`` expanded
into their shards, a DCP folder kept whole."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from ckpt_tool.containers.detect import Kind, sniff
from ckpt_tool.containers.source import FileSource
from ckpt_tool.errors import CkptError
from ckpt_tool.limits import DEFAULT_LIMITS
from ckpt_tool.readers.dcp import find_in_folder

CHECKPOINT_KINDS = (Kind.ZIP, Kind.LEGACY, Kind.SAFETENSORS, Kind.PICKLE, Kind.TAR)


@dataclass(frozen=True)
class InputFile:
    path: str
    group: str | None = None
    """The directory or index file this file was found through."""
    error: str | None = None
    """Set when the input itself could not be expanded (an empty directory, a bad index)."""


def expand_inputs(paths: list[str]) -> list[InputFile]:
    files: list[InputFile] = []
    for path in paths:
        if os.path.isdir(path):
            files += _walk_directory(path)
        elif path.endswith(".index.json") and os.path.isfile(path):
            files += _read_index(path)
        else:
            files.append(InputFile(path))
    return files


def holds_checkpoint(path: str) -> bool:
    """The file's bytes are a checkpoint (or a pickle): sniffed, whatever its name."""
    try:
        with FileSource(path) as source:
            return sniff(source)[0] in CHECKPOINT_KINDS
    except (OSError, CkptError):
        return False


def _walk_directory(root: str) -> list[InputFile]:
    """Every checkpoint below ``root``: a file, or a folder of files that is one checkpoint (a
    DCP folder is one input, its data files are not read on their own)."""
    found: list[InputFile] = []
    seen: set[str] = set()
    for folder, dirs, names in os.walk(root, followlinks=False):
        dirs.sort()
        names = sorted(names)
        owned: set[str] = set()
        for group in find_in_folder(folder, names, DEFAULT_LIMITS):
            owned |= group.files
            found.append(InputFile(group.path, group=root))
        for name in names:
            if name in owned:
                continue
            path = os.path.join(folder, name)
            real = os.path.realpath(path)
            if real in seen or not os.path.isfile(real) or not holds_checkpoint(path):
                continue
            seen.add(real)
            found.append(InputFile(path, group=root))
    if not found:
        return [InputFile(root, error="no checkpoint files in this directory")]
    return found


def _read_index(path: str) -> list[InputFile]:
    try:
        with open(path, encoding="utf-8") as f:
            index = json.load(f)
        weight_map = index["weight_map"]
        shards = list(dict.fromkeys(weight_map.values()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        return [InputFile(path, error=f"not a valid index.json ({type(exc).__name__}: {exc})")]
    folder = os.path.dirname(path)
    result = []
    for shard in shards:
        if not isinstance(shard, str) or os.path.isabs(shard) or ".." in shard.split("/"):
            result.append(InputFile(path, error=f"shard name {shard!r} leaves the index's folder"))
        else:
            result.append(InputFile(os.path.join(folder, shard), group=path))
    return result
