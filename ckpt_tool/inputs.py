"""Turn command-line paths into the files to read: files as given, directories walked as every
command walks them (``ckpt_tool.discovery.walk``: default excludes, ``--exclude``, ``.gitignore``,
symlinked folders not followed), HF ``*.index.json`` expanded into their shards, a DCP folder kept
whole. Shards of one model (named by an index, or ``-00001-of-00003``) carry the model they make
up, so that views can show them as one row."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ckpt_tool.containers.detect import Kind, sniff
from ckpt_tool.containers.source import FileSource
from ckpt_tool.errors import CkptError
from ckpt_tool.limits import DEFAULT_LIMITS
from ckpt_tool.readers.dcp import find_in_folder

if TYPE_CHECKING:
    from ckpt_tool.discovery.walk import Passed, WalkRules

CHECKPOINT_KINDS = (Kind.ZIP, Kind.LEGACY, Kind.SAFETENSORS, Kind.PICKLE, Kind.TAR)
INDEX_SUFFIX = ".index.json"
_SHARD_NAME = re.compile(r"(?P<stem>.+)-(?P<index>\d{5})-of-(?P<count>\d{5})(?P<ext>\.[\w.]+)")


@dataclass(frozen=True)
class InputFile:
    path: str
    group: str | None = None
    """The directory or index file this file was found through."""
    error: str | None = None
    """Set when the input itself could not be expanded (an empty directory, a bad index)."""
    model: str | None = None
    """For a shard: the model it is part of (its index file, or its name without the shard
    number), shared by every shard of that model."""


def expand_inputs(paths: list[str], rules: WalkRules | None = None,
                  passed: list[Passed] | None = None) -> list[InputFile]:
    """The files to read; ``passed`` collects what folder walks passed over (``rules``: the
    default walk when None)."""
    passed = passed if passed is not None else []
    files: list[InputFile] = []
    for path in paths:
        if os.path.isdir(path):
            files += _walk_directory(path, rules, passed)
        elif path.endswith(INDEX_SUFFIX) and os.path.isfile(path):
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


def _walk_directory(root: str, rules: WalkRules | None,
                    passed: list[Passed]) -> list[InputFile]:
    """Every checkpoint below ``root``: a file, or a folder of files that is one checkpoint (a
    DCP folder is one input, its data files are not read on their own)."""
    from ckpt_tool.discovery.walk import DEFAULT_RULES, gitignore_hint, walk_folders

    already = len(passed)
    found: list[InputFile] = []
    seen: set[str] = set()
    for folder, names in walk_folders(root, rules or DEFAULT_RULES, passed):
        owned: set[str] = set()
        for group in find_in_folder(folder, names, DEFAULT_LIMITS):
            owned |= group.files
            found.append(InputFile(group.path, group=root))
        models = _shard_models(folder, names)
        for name in names:
            if name in owned:
                continue
            path = os.path.join(folder, name)
            real = os.path.realpath(path)
            if real in seen or not os.path.isfile(real) or not holds_checkpoint(path):
                continue
            seen.add(real)
            found.append(InputFile(path, group=root, model=models.get(name)))
    if not found:
        hint = gitignore_hint(passed[already:])
        return [InputFile(root, error=f"no checkpoint files in this directory{hint}")]
    return found


def _shard_models(folder: str, names: list[str]) -> dict[str, str]:
    """File name -> the model it is a shard of: the index naming it, or its shard-name stem."""
    models: dict[str, str] = {}
    present = set(names)
    for name in names:
        if name.endswith(INDEX_SUFFIX):
            index = os.path.join(folder, name)
            for shard in _index_shards(index) or []:
                if shard in present:
                    models.setdefault(shard, index)
    for name in names:
        match = _SHARD_NAME.fullmatch(name)
        if match and name not in models:
            stem = f"{match['stem']}-*-of-{match['count']}{match['ext']}"
            models[name] = os.path.join(folder, stem)
    return models


def _index_shards(path: str) -> list[str] | None:
    try:
        with open(path, encoding="utf-8") as f:
            return list(dict.fromkeys(json.load(f)["weight_map"].values()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


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
            result.append(InputFile(os.path.join(folder, shard), group=path, model=path))
    return result
