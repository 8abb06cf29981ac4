"""Folders that are one model saved in several files, found and opened: a DCP checkpoint, a
DeepSpeed ZeRO checkpoint, an HF index and its shards, or per-rank DTensor files.

Files are recognised by the names their producer gives them (``.metadata``, ``latest`` and
``*_optim_states.pt``, ``*.index.json``) and then read from their bytes; per-rank DTensor files
have no such names, so a folder's torch files are one when each holds a DTensor's rank part.
"""

from __future__ import annotations

from enum import Enum

from ckpt_tool.containers.locations import exists, is_url, join, list_folder, read_small
from ckpt_tool.errors import CkptError, FormatError
from ckpt_tool.limits import Limits
from ckpt_tool.model.checkpoint import Checkpoint
from ckpt_tool.model.record import Record
from ckpt_tool.readers.dcp import METADATA_NAME, find_in_folder
from ckpt_tool.readers.hf_index import (
    INDEX_SUFFIX,
    PREFERRED_INDEXES,
    parse_index,
    read_hf_index,
    shard_names,
)
from ckpt_tool.readers.zero import LATEST, is_zero_folder, read_zero

_RANK_FILES_LIMIT = 4096
"""Most files a folder of per-rank DTensor files is read for (one per rank)."""


class ModelKind(str, Enum):
    DCP = "dcp"
    DEEPSPEED_ZERO = "deepspeed-zero"
    HF_INDEX = "hf-index"
    DTENSOR_RANKS = "dtensor-ranks"


class FolderModel(Record):
    __slots__ = ("kind", "path", "files", "folders", "entry")
    kind: ModelKind
    path: str
    """What is opened and shown: the folder, an index file, a rank's ``__R.metadata``."""
    files: frozenset[str]
    """Names in the folder that belong to it."""
    folders: frozenset[str]
    """Subfolders that belong to it (a ZeRO checkpoint's tag folders)."""
    entry: str | None
    """The file read first when it is not ``path`` (a DCP checkpoint's metadata); None for a
    DCP checkpoint of safetensors files."""

    def __init__(self, kind: ModelKind, path: str, files: frozenset[str],
                 folders: frozenset[str] = frozenset(), entry: str | None = None) -> None:
        self.kind = kind
        self.path = path
        self.files = files
        self.folders = folders
        self.entry = entry


def find_models(folder: str, names: list[str], limits: Limits) -> list[FolderModel]:
    """Every model in the folder made of its files, most specific first."""
    found: list[FolderModel] = []
    if is_url(folder):
        if METADATA_NAME in names:
            found.append(FolderModel(ModelKind.DCP, folder, frozenset(names),
                                     entry=join(folder, METADATA_NAME)))
    else:
        found += [FolderModel(ModelKind.DCP, group.path, group.files, entry=group.metadata)
                  for group in find_in_folder(folder, names, limits)]
    zero = _zero_model(folder, names)
    if zero is not None:
        found.append(zero)
    owned = set().union(*(model.files for model in found))
    indexes = [_index_model(folder, name) for name in _index_order(names) if name not in owned]
    found += [model for model in indexes if model is not None]
    owned = set().union(owned, *(model.files for model in found))
    ranks = _dtensor_model(folder, [name for name in names if name not in owned], limits)
    if ranks is not None:
        found.append(ranks)
    return found


def _index_order(names: list[str]) -> list[str]:
    """Index files, the ones ``from_pretrained`` reads first."""
    indexes = [name for name in names if name.endswith(INDEX_SUFFIX)]
    return sorted(indexes, key=lambda n: (PREFERRED_INDEXES.index(n)
                                          if n in PREFERRED_INDEXES else len(PREFERRED_INDEXES)))


def _index_model(folder: str, name: str) -> FolderModel | None:
    path = join(folder, name)
    try:
        pairs = parse_index(read_small(path))
        shards = shard_names(pairs) if pairs else None
    except FormatError:
        return None
    if not shards:
        return None
    return FolderModel(ModelKind.HF_INDEX, path, frozenset({name, *shards}))


def _zero_model(folder: str, names: list[str]) -> FolderModel | None:
    if is_zero_folder(names):
        return FolderModel(ModelKind.DEEPSPEED_ZERO, folder, frozenset(names))
    if LATEST not in names:
        return None
    try:
        tag = read_small(join(folder, LATEST)).decode("utf-8", "replace").strip()
    except FormatError:
        return None
    if not tag or tag not in names or "/" in tag:
        return None
    inner = list_folder(join(folder, tag))
    if inner is not None and not is_zero_folder(inner):
        return None
    tags = frozenset(name for name in names if name == tag or name.startswith("global_step"))
    scripts = {"zero_to_fp32.py", "zero_to_torch.py"} & set(names)
    return FolderModel(ModelKind.DEEPSPEED_ZERO, folder, frozenset({LATEST, *scripts}), tags)


def _dtensor_model(folder: str, names: list[str], limits: Limits) -> FolderModel | None:
    """The folder's torch files, when there are several and each holds one rank's parts of
    DTensors (the first file is read alone first: most folders stop there)."""
    from ckpt_tool.readers.dtensor_ranks import has_rank_parts
    from ckpt_tool.readers.parts import read_part

    candidates = [name for name in names if _is_torch_file(join(folder, name))]
    if not 2 <= len(candidates) <= _RANK_FILES_LIMIT:
        return None
    for name in candidates:
        try:
            if not has_rank_parts(read_part(join(folder, name), limits), limits):
                return None
        except CkptError:
            return None
    return FolderModel(ModelKind.DTENSOR_RANKS, folder, frozenset(candidates))


def _is_torch_file(path: str) -> bool:
    from ckpt_tool.containers.detect import Kind, sniff
    from ckpt_tool.containers.remote import open_url
    from ckpt_tool.containers.source import FileSource

    try:
        source = open_url(path) if is_url(path) else FileSource(path)
    except (OSError, CkptError):
        return False
    try:
        return sniff(source)[0] is Kind.ZIP
    except (OSError, CkptError):
        return False
    finally:
        source.close()


def open_folder_model(model: FolderModel, limits: Limits) -> Checkpoint:
    from ckpt_tool.readers import open_checkpoint

    if model.kind is ModelKind.DCP:
        if model.entry is not None:
            return open_checkpoint(model.entry, limits)
        from ckpt_tool.pickles.weights_only import judge_weights_only
        from ckpt_tool.readers.dcp import read_dcp_safetensors

        checkpoint = read_dcp_safetensors(model.path, sorted(model.files), limits)
        checkpoint.weights_only = judge_weights_only(checkpoint)
        return checkpoint
    if model.kind is ModelKind.DEEPSPEED_ZERO:
        return read_zero(model.path, limits)
    if model.kind is ModelKind.HF_INDEX:
        return read_hf_index(model.path, limits)
    from ckpt_tool.readers.dtensor_ranks import read_dtensor_ranks

    paths = [join(model.path, name) for name in sorted(model.files)]
    return read_dtensor_ranks(model.path, paths, limits)


def open_folder(folder: str, limits: Limits) -> Checkpoint:
    """The one model a folder (or a folder URL, ending in ``/``) holds."""
    names = list_folder(folder)
    if names is None:
        return _open_http_folder(folder, limits)
    models = find_models(folder, names, limits)
    if not models:
        raise FormatError("is a directory, not one model (no DCP .metadata, DeepSpeed latest, "
                          "*.index.json or per-rank DTensor files): name a file in it")
    return open_folder_model(models[0], limits)


def _open_http_folder(folder: str, limits: Limits) -> Checkpoint:
    """An HTTP folder cannot be listed: try the names each producer writes."""
    if exists(join(folder, METADATA_NAME)):
        from ckpt_tool.readers import open_checkpoint

        return open_checkpoint(join(folder, METADATA_NAME), limits)
    for name in PREFERRED_INDEXES:
        if exists(join(folder, name)):
            return read_hf_index(join(folder, name), limits)
    if exists(join(folder, LATEST)):
        return read_zero(folder, limits)
    raise FormatError("an HTTP folder cannot be listed, and it holds no .metadata, "
                      f"{' or '.join(PREFERRED_INDEXES)} or {LATEST}: give the URL of a file")
