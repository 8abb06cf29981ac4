"""torch.save archives inside another file: the slices of a DCP data file, the pickled members of a
``.pt2``. Each is read like any checkpoint, then placed where its bytes really are (absolute
offsets in the outer file, storage keys made unique, pickles named by where they sit)."""

from __future__ import annotations

from typing import Any

from ckpt_tool.containers.source import SliceSource, Source
from ckpt_tool.limits import Limits
from ckpt_tool.model.checkpoint import Anomaly, Checkpoint, Loader, Storage, TensorRef
from ckpt_tool.model.tree import walk
from ckpt_tool.readers.torch_zip import read_torch_zip


def read_embedded(source: Source, start: int, length: int, where: str, loader: Loader,
                  limits: Limits, file: str | None = None) -> Checkpoint:
    """The torch.save archive in ``source[start:start+length]``, its offsets made absolute.

    ``where`` names it in keys, pickles and messages (``__0_0.distcp@1641``); ``file`` is set on
    its storages and pickles when ``source`` is not the checkpoint's own file.
    """
    inner = read_torch_zip(SliceSource(source, start, length, where), limits)
    moved: dict[int, Storage] = {}
    for key, storage in list(inner.storages.items()):
        offset = None if storage.offset is None else storage.offset + start
        placed = storage._replace(key=f"{where}:{key}", offset=offset, file=file)
        moved[id(storage)] = placed
        inner.storages[key] = placed
    _retarget(inner.root, moved, limits)
    inner.pickles = [record.replace(member=f"{where}/{record.member}",
                                    data_offset=record.data_offset + start, file=file,
                                    loader=loader) for record in inner.pickles]
    inner.anomalies = [Anomaly(a.code, f"{where}: {a.message}", a.member)
                       for a in inner.anomalies]
    return inner


def _retarget(root: Any, moved: dict[int, Storage], limits: Limits) -> None:
    for leaf in walk(root, limits):
        if isinstance(leaf.value, TensorRef):
            _retarget_tensor(leaf.value, moved)


def _retarget_tensor(tensor: TensorRef, moved: dict[int, Storage]) -> None:
    if tensor.storage is not None and id(tensor.storage) in moved:
        tensor.storage = moved[id(tensor.storage)]
    components = tensor.extra.get("components") if tensor.extra else None
    for part in (components or {}).values():
        if isinstance(part, TensorRef):
            _retarget_tensor(part, moved)
