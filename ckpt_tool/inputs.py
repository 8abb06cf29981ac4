"""Turn command-line paths into the inputs to read: files as given, directories walked (without
following symlinked folders, so a link loop cannot trap the walk), and every model saved in
several files kept whole: a DCP folder, a DeepSpeed ZeRO folder, an HF ``*.index.json`` with its
shards, a folder of per-rank DTensor files. Their files are not read on their own."""

from __future__ import annotations

import os
from dataclasses import dataclass

from ckpt_tool.containers.detect import Kind, sniff
from ckpt_tool.containers.locations import read_small
from ckpt_tool.containers.remote import is_url
from ckpt_tool.containers.source import FileSource
from ckpt_tool.errors import CkptError
from ckpt_tool.limits import DEFAULT_LIMITS
from ckpt_tool.readers.folders import ModelKind, find_models
from ckpt_tool.readers.hf_index import parse_index, shard_names

CHECKPOINT_KINDS = (Kind.ZIP, Kind.LEGACY, Kind.SAFETENSORS, Kind.PICKLE, Kind.TAR)


@dataclass(frozen=True)
class InputFile:
    path: str
    group: str | None = None
    """The directory this input was found in."""
    error: str | None = None
    """Set when the input itself could not be expanded (an empty directory, a bad index)."""
    model: ModelKind | None = None
    """What kind of model in several files it is (None for one file, or a URL not yet read)."""


def expand_inputs(paths: list[str]) -> list[InputFile]:
    files: list[InputFile] = []
    for path in paths:
        if is_url(path):
            files.append(InputFile(path))
        elif os.path.isdir(path):
            files += _walk_directory(path)
        elif path.endswith(".index.json") and os.path.isfile(path):
            files.append(_index_input(path))
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
    """Every checkpoint below ``root``: a file, or a model made of several files (its files and
    subfolders are not walked on their own)."""
    found: list[InputFile] = []
    seen: set[str] = set()
    for folder, dirs, names in os.walk(root, followlinks=False):
        dirs.sort()
        files = sorted(names)
        owned: set[str] = set()
        try:
            models = find_models(folder, sorted([*names, *dirs]), DEFAULT_LIMITS)
        except CkptError:
            models = []
        for model in models:
            owned |= model.files
            dirs[:] = [d for d in dirs if d not in model.folders]
            found.append(InputFile(model.path, group=root, model=model.kind))
        for name in files:
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


def _index_input(path: str) -> InputFile:
    try:
        pairs = parse_index(read_small(path))
        if pairs is None:
            raise CkptError("no weight_map object")
        shard_names(pairs)
    except CkptError as exc:
        return InputFile(path, error=f"not a valid index.json ({exc})")
    return InputFile(path, model=ModelKind.HF_INDEX)
