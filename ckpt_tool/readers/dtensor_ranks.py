"""Per-rank ``torch.save`` files of DTensors (each rank saving its own ``state_dict()`` under
FSDP2 or tensor parallelism), read as one model: each DTensor's local parts placed in the whole
by its placements and device mesh, as ``DTensor.full_tensor()`` gathers them.

Where each rank's part sits follows torch's ``_compute_local_shape_and_global_offset``
(torch/distributed/tensor/_utils.py): mesh dimensions in order, ``Shard(d)`` cuts dimension d
into ``torch.chunk`` pieces (``ceil(size / n)`` each, the last ones shorter or empty),
``Replicate()`` leaves it whole (the lowest rank's copy is kept). ``Partial`` (unreduced sums) and
``_StridedShard`` (FSDP2 over tensor parallelism, rows interleaved) are not merged: such a tensor
is listed with the reason, and convert refuses it.
"""

from __future__ import annotations

import re
from typing import Any

from ckpt_tool.containers.locations import base_name
from ckpt_tool.errors import FormatError
from ckpt_tool.limits import Limits
from ckpt_tool.model.checkpoint import Checkpoint, Chunk, Sharding, TensorRef
from ckpt_tool.model.tree import walk
from ckpt_tool.readers.dcp import contiguous_stride
from ckpt_tool.readers.parts import combine, read_part

_SHARD = re.compile(r"Shard\(dim=(\d+)\)")
_REPLICATE = "Replicate()"
UNSUPPORTED_KEY = "unsupported"
"""``TensorRef.extra`` key: why a tensor cannot be written (convert refuses it, saying so)."""


def has_rank_parts(part: Checkpoint, limits: Limits) -> bool:
    """The file holds a DTensor of which it has only one rank's part."""
    return any(isinstance(leaf.value, TensorRef) and leaf.value.sharding is not None
               and not leaf.value.is_whole for leaf in walk(part.root, limits))


def read_dtensor_ranks(folder: str, paths: list[str], limits: Limits) -> Checkpoint:
    parts = sorted((read_part(path, limits) for path in paths), key=lambda p: _rank(p, limits))
    ranks = [_rank(part, limits) for part in parts]
    if len(set(ranks)) != len(ranks):
        raise FormatError(f"two files hold the same rank's parts (ranks {ranks})")
    tables = [_tensors(part, limits) for part in parts]
    _check_same_names(parts, tables)
    merged: dict[int, TensorRef] = {}
    for name, first in tables[0].items():
        if first.sharding is not None:
            locals_ = [(table[name], rank) for table, rank in zip(tables, ranks, strict=True)]
            merged[id(first)] = merge_dtensor(name, locals_)
    root = _substitute(parts[0].root, merged)
    _check_all_merged(root, limits)
    meshes = [t.sharding.mesh_shape for t in tables[0].values() if t.sharding is not None]
    mesh = list(meshes[0]) if meshes and meshes[0] else "?"
    version = (f"{parts[0].format_version or parts[0].format.value} ({len(parts)} ranks' "
               f"DTensor files, mesh {mesh})")
    return combine(folder, parts[0].format, parts, root, version)


def _rank(part: Checkpoint, limits: Limits) -> int:
    for leaf in walk(part.root, limits):
        sharding = leaf.value.sharding if isinstance(leaf.value, TensorRef) else None
        if sharding is not None and sharding.rank is not None:
            return sharding.rank
    raise FormatError(f"{base_name(part.path)}: its DTensors do not say which rank saved them")


def _tensors(part: Checkpoint, limits: Limits) -> dict[str, TensorRef]:
    return {leaf.name: leaf.value for leaf in walk(part.root, limits)
            if isinstance(leaf.value, TensorRef)}


def _check_same_names(parts: list[Checkpoint], tables: list[dict[str, TensorRef]]) -> None:
    names = set(tables[0])
    for part, table in zip(parts[1:], tables[1:], strict=True):
        if set(table) != names:
            odd = sorted(names ^ set(table))[:3]
            raise FormatError(f"{base_name(parts[0].path)} and {base_name(part.path)} hold "
                              f"different tensors ({', '.join(odd)}...)")


def merge_dtensor(name: str, locals_: list[tuple[TensorRef, int]]) -> TensorRef:
    """The whole tensor, its chunks the ranks' parts (one per place: replicas kept once)."""
    first = locals_[0][0].sharding
    assert first is not None
    for local, rank in locals_:
        sharding = local.sharding
        if sharding is None or (sharding.global_shape, sharding.placements,
                                sharding.mesh_shape) != (first.global_shape, first.placements,
                                                         first.mesh_shape):
            raise FormatError(f"{name}: rank {rank}'s part is not laid out like rank "
                              f"{locals_[0][1]}'s")
        if local.dtype != locals_[0][0].dtype:
            raise FormatError(f"{name}: its parts have different dtypes")
    shape = first.global_shape
    whole = TensorRef(locals_[0][0].dtype, shape, contiguous_stride(shape),
                      requires_grad=locals_[0][0].requires_grad)
    reason = _unsupported_placement(first)
    if reason is not None:
        whole.set_extra(UNSUPPORTED_KEY, reason)
        return whole
    chunks: dict[tuple[tuple[int, ...], tuple[int, ...]], Chunk] = {}
    for local, rank in locals_:
        offsets, sizes = local_box(shape, first, _coordinate(name, local.sharding, rank))
        if sizes != local.shape:
            raise FormatError(f"{name}: rank {rank}'s part is {list(local.shape)}, its placements "
                              f"make it {list(sizes)}")
        plain = TensorRef(local.dtype, local.shape, local.stride, local.storage_offset,
                          local.storage, local.requires_grad)
        chunks.setdefault((offsets, sizes), Chunk(offsets, plain))
    whole.chunks = tuple(chunks.values())
    return whole


def _unsupported_placement(sharding: Sharding) -> str | None:
    for placement in sharding.placements:
        if placement.startswith("Partial"):
            return (f"a DTensor with a {placement} placement: each rank holds a partial sum and "
                    "the tensor is their reduction, which ckpt does not compute (call "
                    ".redistribute() to Replicate before saving)")
        if placement != _REPLICATE and not _SHARD.fullmatch(placement):
            return (f"a DTensor with a {placement} placement, whose parts ckpt does not place "
                    "(only Shard(dim) and Replicate() are merged)")
    if sharding.mesh_shape is None or len(sharding.mesh_shape) != len(sharding.placements):
        return "a DTensor whose device mesh shape is not in the file"
    return None


def _coordinate(name: str, sharding: Sharding | None, rank: int) -> tuple[int, ...]:
    assert sharding is not None and sharding.mesh_shape is not None
    if sharding.coordinate is not None:
        return sharding.coordinate
    if len(sharding.mesh_shape) == 1 and rank < sharding.mesh_shape[0]:
        return (rank,)
    raise FormatError(f"{name}: rank {rank}'s coordinate on the device mesh is not in the file")


def local_box(shape: tuple[int, ...], sharding: Sharding, coordinate: tuple[int, ...]
              ) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(offsets, sizes) of the part at ``coordinate``, as torch computes them."""
    assert sharding.mesh_shape is not None
    offsets, sizes = [0] * len(shape), list(shape)
    for mesh_dim, placement in enumerate(sharding.placements):
        match = _SHARD.fullmatch(placement)
        if match is None:
            continue
        dim = int(match.group(1))
        if dim >= len(shape):
            raise FormatError(f"{placement} of a tensor of {len(shape)} dimensions")
        count, index = sharding.mesh_shape[mesh_dim], coordinate[mesh_dim]
        full = -(-sizes[dim] // count)
        start = min(sizes[dim], full * index)
        length = max(0, min(sizes[dim], start + full) - start)
        offsets[dim] += start
        sizes[dim] = length
    return tuple(offsets), tuple(sizes)


def _substitute(value: Any, merged: dict[int, TensorRef]) -> Any:
    """Rank 0's tree with each DTensor replaced by the merged tensor."""
    if isinstance(value, TensorRef):
        return merged.get(id(value), value)
    if isinstance(value, dict):
        return {key: _substitute(item, merged) for key, item in value.items()}
    if isinstance(value, list):
        return [_substitute(item, merged) for item in value]
    if isinstance(value, tuple):
        return tuple(_substitute(item, merged) for item in value)
    return value


def _check_all_merged(root: Any, limits: Limits) -> None:
    for leaf in walk(root, limits):
        if isinstance(leaf.value, TensorRef) and not leaf.value.is_whole:
            raise FormatError(f"{leaf.name}: a DTensor inside an object ckpt does not rebuild "
                              "(it merges DTensors in dicts, lists and tuples)")
