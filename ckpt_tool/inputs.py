"""Turn command-line paths into the inputs to read: files as given, directories walked as every
command walks them (``ckpt_tool.discovery.walk``: default excludes, ``--exclude``, ``.gitignore``,
symlinked folders not followed), and every model saved in several files kept whole: a DCP folder,
a DeepSpeed ZeRO folder, an HF ``*.index.json`` with its shards, a folder of per-rank DTensor
files (their files are not read on their own). Shards without an index
(``-00001-of-00003``) carry the model they make up, so that views can show them as one row."""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING

from ckpt_tool.containers.detect import Kind, sniff
from ckpt_tool.containers.locations import read_small
from ckpt_tool.containers.remote import NO_OPTIONS, RemoteOptions, is_url
from ckpt_tool.containers.source import FileSource
from ckpt_tool.errors import CkptError
from ckpt_tool.limits import DEFAULT_LIMITS
from ckpt_tool.model.record import Record

if TYPE_CHECKING:
    from ckpt_tool.discovery.walk import Passed, WalkRules
    from ckpt_tool.readers.folders import FolderModel, ModelKind

CHECKPOINT_KINDS = (Kind.ZIP, Kind.LEGACY, Kind.SAFETENSORS, Kind.PICKLE, Kind.TAR)
INDEX_SUFFIX = ".index.json"
_MODEL_MARKERS = {".metadata", "latest"}
"""Names DCP and DeepSpeed write beside a model's files (``readers.dcp.METADATA_NAME``,
``readers.zero.LATEST``; the readers of folders are imported only where folders are read)."""
_SHARD_NAME = re.compile(r"(?P<stem>.+)-(?P<index>\d{5})-of-(?P<count>\d{5})(?P<ext>\.[\w.]+)")


class InputFile(Record):
    __slots__ = ("path", "group", "error", "model", "shard_of", "size")
    path: str
    group: str | None
    """The directory this input was found in."""
    error: str | None
    """Set when the input itself could not be expanded (an empty directory, a bad index)."""
    model: ModelKind | None
    """What kind of model in several files it is (None for one file, or a URL not yet read)."""
    shard_of: str | None
    """For a shard found without its index: the model it is part of (its name without the shard
    number), shared by every shard of that model."""
    size: int | None
    """A remote file's size, when the listing that found it gave it."""

    def __init__(self, path: str, group: str | None = None, error: str | None = None,
                 model: ModelKind | None = None, shard_of: str | None = None,
                 size: int | None = None) -> None:
        self.path = path
        self.group = group
        self.error = error
        self.model = model
        self.shard_of = shard_of
        self.size = size


def expand_inputs(paths: list[str], rules: WalkRules | None = None,
                  passed: list[Passed] | None = None,
                  remote: RemoteOptions = NO_OPTIONS) -> list[InputFile]:
    """The inputs to read; ``passed`` collects what folder walks passed over (``rules``: the
    default walk when None). A URL of a remote folder or repository is listed
    (``containers.remote_folders``), its models in several files kept whole."""
    passed = passed if passed is not None else []
    files: list[InputFile] = []
    for path in paths:
        if is_url(path):
            files += _expand_url(path, remote, passed)
        elif os.path.isdir(path):
            files += _walk_directory(path, rules, passed)
        elif path.endswith(INDEX_SUFFIX) and os.path.isfile(path):
            files.append(_index_input(path))
        else:
            files.append(InputFile(path))
    return files


def _expand_url(url: str, remote: RemoteOptions, passed: list[Passed]) -> list[InputFile]:
    from ckpt_tool.containers.remote_folders import expand_url
    from ckpt_tool.discovery.walk import Passed

    listing = expand_url(url, remote)
    top = url if url.endswith("/") else url + "/"
    models, owned = _remote_models([found.url for found in listing.files] + listing.skipped, top)
    passed += [Passed(path, "not named as a checkpoint (remote files are chosen by name)", False)
               for path in listing.skipped if path not in owned]
    found = [InputFile(model.path, group=url, model=model.kind) for model in models]
    return found + [InputFile(file.url, group=file.folder, error=file.error, size=file.size)
                    for file in listing.files if file.url not in owned]


def _remote_models(urls: list[str], top: str) -> tuple[list[FolderModel], set[str]]:
    """The models in several files among a remote listing's files, and the URLs they own. Below
    the folder listed (``top``), only folders holding a file a producer names (``.metadata``,
    ``latest``, ``*.index.json``) are looked at: per-rank DTensor files would cost a read of
    every file."""
    from ckpt_tool.readers.folders import ModelKind, find_models

    names: dict[str, set[str]] = {}
    for url in urls:
        folder, name = url.rsplit("/", 1)
        while "://" in folder and not folder.endswith(":/"):
            names.setdefault(folder + "/", set()).add(name)
            folder, name = folder.rsplit("/", 1)
            name += "/"
    models: list[FolderModel] = []
    owned: set[str] = set()
    for folder in sorted(names):
        if any(folder.startswith(taken) for taken in owned if taken.endswith("/")):
            continue
        files = sorted(name.rstrip("/") for name in names[folder])
        named = any(name in _MODEL_MARKERS or name.endswith(INDEX_SUFFIX) for name in files)
        if not named and folder != top:
            continue
        try:
            found = find_models(folder, files, DEFAULT_LIMITS)
        except CkptError:
            continue
        for model in found:
            if model.kind is ModelKind.DTENSOR_RANKS and folder != top:
                continue
            models.append(model)
            owned |= {folder + name for name in model.files}
            owned |= {folder + name + "/" for name in model.folders}
    owned |= {url for url in urls if any(url.startswith(taken) for taken in owned
                                         if taken.endswith("/"))}
    return models, owned


def holds_checkpoint(path: str) -> bool:
    """The file's bytes are a checkpoint (or a pickle): sniffed, whatever its name."""
    try:
        with FileSource(path) as source:
            return sniff(source)[0] in CHECKPOINT_KINDS
    except (OSError, CkptError):
        return False


def _walk_directory(root: str, rules: WalkRules | None,
                    passed: list[Passed]) -> list[InputFile]:
    """Every checkpoint below ``root``: a file, or a model made of several files (its files and
    subfolders are not walked on their own)."""
    from ckpt_tool.discovery.walk import DEFAULT_RULES, gitignore_hint, walk_folders
    from ckpt_tool.readers.folders import find_models

    already = len(passed)
    found: list[InputFile] = []
    seen: set[str] = set()
    for folder, names, subfolders in walk_folders(root, rules or DEFAULT_RULES, passed):
        owned: set[str] = set()
        try:
            models = find_models(folder, sorted([*names, *subfolders]), DEFAULT_LIMITS)
        except CkptError:
            models = []
        for model in models:
            owned |= model.files
            subfolders[:] = [name for name in subfolders if name not in model.folders]
            found.append(InputFile(model.path, group=root, model=model.kind))
        shards = _shard_models(folder, [name for name in names if name not in owned])
        for name in names:
            if name in owned:
                continue
            path = os.path.join(folder, name)
            real = os.path.realpath(path)
            if real in seen or not os.path.isfile(real) or not holds_checkpoint(path):
                continue
            seen.add(real)
            found.append(InputFile(path, group=root, shard_of=shards.get(name)))
    if not found:
        hint = gitignore_hint(passed[already:])
        return [InputFile(root, error=f"no checkpoint files in this directory{hint}")]
    return found


def _shard_models(folder: str, names: list[str]) -> dict[str, str]:
    """File name -> the model a shard without its index is part of: its shard-name stem."""
    models: dict[str, str] = {}
    for name in names:
        match = _SHARD_NAME.fullmatch(name)
        if match:
            models[name] = os.path.join(
                folder, f"{match['stem']}-*-of-{match['count']}{match['ext']}")
    return models


def _index_input(path: str) -> InputFile:
    from ckpt_tool.readers.folders import ModelKind
    from ckpt_tool.readers.hf_index import parse_index, shard_names

    try:
        pairs = parse_index(read_small(path))
        if pairs is None:
            raise CkptError("no weight_map object")
        shard_names(pairs)
    except CkptError as exc:
        return InputFile(path, error=f"not a valid index.json ({exc})")
    return InputFile(path, model=ModelKind.HF_INDEX)
