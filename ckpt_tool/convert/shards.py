"""HF-style shards: ``model-00001-of-00003.safetensors`` and ``model.safetensors.index.json``,
named and split as transformers' ``save_pretrained`` does, so ``from_pretrained`` loads the folder.

Tensors are taken in order as ``huggingface_hub.split_state_dict_into_shards_factory`` takes
them: a tensor larger than the size gets a shard of its own (appended at once), and the current
shard is closed when the next tensor would pass the size. One shard is written under the plain
name with no index, as transformers does. The index is ``json.dumps(index, indent=2,
sort_keys=True) + "\\n"`` with ``metadata.total_size`` (the tensors' bytes),
``metadata.total_parameters`` (their elements) and ``weight_map`` from every tensor to its file.
"""

from __future__ import annotations

import json
import os

from ckpt_tool.convert.plan import Entry
from ckpt_tool.model.record import Record

SUFFIX = ".safetensors"
DEFAULT_MODEL_NAME = "model.safetensors"
DEFAULT_SHARD_SIZE = 5 * 10**9
"""5GB as huggingface_hub counts it (powers of 1000): its ``split_torch_state_dict_into_shards``
default and transformers 4's ``max_shard_size`` (transformers 5 writes up to 50GB)."""


def split_shards(entries: list[Entry], max_bytes: int | None) -> list[list[Entry]]:
    if not max_bytes:
        return [entries]
    shards: list[list[Entry]] = []
    current: list[Entry] = []
    size = 0
    for entry in entries:
        if entry.nbytes > max_bytes:
            shards.append([entry])
            continue
        if size + entry.nbytes > max_bytes and current:
            shards.append(current)
            current, size = [], 0
        current.append(entry)
        size += entry.nbytes
    if current or not shards:
        shards.append(current)
    return shards


class ShardNames(Record):
    """The names written for ``dest``: itself when one file, else numbered files beside it."""

    __slots__ = ("dest",)

    def __init__(self, dest: str) -> None:
        self.dest = dest

    @property
    def base(self) -> str:
        return self.dest[: -len(SUFFIX)] if self.dest.endswith(SUFFIX) else self.dest

    def files(self, count: int) -> list[str]:
        if count == 1:
            return [self.dest]
        return [f"{self.base}-{i:05d}-of-{count:05d}{SUFFIX}" for i in range(1, count + 1)]

    def index(self) -> str:
        return f"{self.base}{SUFFIX}.index.json"

    def all(self, count: int) -> list[str]:
        return self.files(count) + ([self.index()] if count > 1 else [])


def index_json(shards: list[list[Entry]], files: list[str]) -> str:
    weight_map = {entry.name: os.path.basename(file)
                  for shard, file in zip(shards, files, strict=True) for entry in shard}
    entries = [entry for shard in shards for entry in shard]
    metadata = {"total_parameters": sum(entry.tensor.numel for entry in entries),
                "total_size": sum(entry.nbytes for entry in entries)}
    return json.dumps({"metadata": metadata, "weight_map": weight_map}, indent=2,
                      sort_keys=True) + "\n"
