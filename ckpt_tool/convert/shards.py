"""HF-style shards: ``model-00001-of-00003.safetensors`` and ``model.safetensors.index.json``.

Tensors are packed in order and a new shard starts when the next tensor would pass the size, as
``huggingface_hub.split_torch_state_dict_into_shards`` does; a tensor larger than the size gets a
shard of its own. The index is written like ``transformers``' ``save_pretrained``: ``metadata``
with ``total_size`` (the tensors' bytes), ``weight_map`` from name to shard file, sorted keys.
"""

from __future__ import annotations

import json
import os

from ckpt_tool.convert.plan import Entry

SUFFIX = ".safetensors"


def split_shards(entries: list[Entry], max_bytes: int | None) -> list[list[Entry]]:
    if not max_bytes:
        return [entries]
    shards: list[list[Entry]] = [[]]
    size = 0
    for entry in entries:
        if shards[-1] and size + entry.nbytes > max_bytes:
            shards.append([])
            size = 0
        shards[-1].append(entry)
        size += entry.nbytes
    return shards


def _base(dest: str) -> str:
    return dest[: -len(SUFFIX)] if dest.endswith(SUFFIX) else dest


def shard_files(dest: str, count: int) -> list[str]:
    """One shard: ``dest`` itself; more: numbered names beside it."""
    if count == 1:
        return [dest]
    base = _base(dest)
    return [f"{base}-{i:05d}-of-{count:05d}{SUFFIX}" for i in range(1, count + 1)]


def index_file(dest: str) -> str:
    return f"{_base(dest)}{SUFFIX}.index.json"


def index_json(shards: list[list[Entry]], files: list[str]) -> str:
    weight_map = {entry.name: os.path.basename(file)
                  for shard, file in zip(shards, files, strict=True) for entry in shard}
    total = sum(entry.nbytes for shard in shards for entry in shard)
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    return json.dumps(index, indent=2, sort_keys=True) + "\n"
