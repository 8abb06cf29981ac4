"""Shared by the readers of models saved in several files (an HF index and its shards, per-rank
DTensor files, a DeepSpeed ZeRO folder): read each file as a checkpoint of its own, with every
storage naming the file its bytes are in, then make one :class:`Checkpoint` of them."""

from __future__ import annotations

from typing import Any

from ckpt_tool.containers.locations import base_name
from ckpt_tool.errors import FormatError
from ckpt_tool.limits import Limits
from ckpt_tool.model.checkpoint import Anomaly, Checkpoint, Format, GlobalRef, Storage, TensorRef
from ckpt_tool.model.tree import walk


def read_part(path: str, limits: Limits) -> Checkpoint:
    """One file of the model: read as any checkpoint, its storages keyed ``NAME:KEY`` and given
    ``path`` as their file."""
    from ckpt_tool.readers import open_checkpoint

    try:
        part = open_checkpoint(path, limits)
    except FormatError as exc:
        raise FormatError(f"{base_name(path)}: {exc}") from None
    place_in_file(part, path, limits)
    return part


def place_in_file(part: Checkpoint, path: str, limits: Limits) -> None:
    prefix = base_name(path)
    moved: dict[int, Storage] = {}
    for key, storage in list(part.storages.items()):
        placed = storage._replace(key=f"{prefix}:{key}", file=storage.file or path)
        moved[id(storage)] = placed
        del part.storages[key]
        part.storages[placed.key] = placed
    for leaf in walk(part.root, limits):
        if isinstance(leaf.value, TensorRef):
            _retarget(leaf.value, moved)
    part.pickles = [record.replace(file=record.file or path, member=f"{prefix}/{record.member}")
                    for record in part.pickles]
    part.anomalies = [Anomaly(a.code, f"{prefix}: {a.message}", a.member)
                      for a in part.anomalies]


def _retarget(tensor: TensorRef, moved: dict[int, Storage]) -> None:
    if tensor.storage is not None and id(tensor.storage) in moved:
        tensor.storage = moved[id(tensor.storage)]
    components = tensor.extra.get("components") if tensor.extra else None
    for part in (components or {}).values():
        if isinstance(part, TensorRef):
            _retarget(part, moved)


def combine(path: str, format: Format, parts: list[Checkpoint], root: Any, version: str,
            extra_files: dict[str, int] | None = None) -> Checkpoint:
    """One checkpoint of its parts: their storages, pickles, globals, anomalies and files."""
    first = parts[0]
    byteorders = {part.byteorder for part in parts}
    if len(byteorders) > 1:
        raise FormatError("its files differ in byte order: "
                          + ", ".join(f"{base_name(p.path)} {p.byteorder}" for p in parts))
    checkpoint = Checkpoint(path=path, format=format, size=0, root=root, format_version=version,
                            pickle_protocol=first.pickle_protocol, byteorder=first.byteorder)
    checkpoint.files = dict(extra_files or {})
    globals_seen: dict[str, GlobalRef] = {}
    for part in parts:
        checkpoint.storages.update(part.storages)
        checkpoint.pickles += part.pickles
        checkpoint.anomalies += part.anomalies
        checkpoint.bytes_read += part.bytes_read
        checkpoint.files.update(part.files or {part.path: part.size})
        for ref in part.globals:
            globals_seen.setdefault(ref.full_name, ref)
    checkpoint.globals = list(globals_seen.values())
    metadata = [part.safetensors_metadata for part in parts if part.safetensors_metadata]
    if metadata and all(m == metadata[0] for m in metadata):
        checkpoint.safetensors_metadata = metadata[0]
    checkpoint.size = sum(checkpoint.files.values())
    return checkpoint
