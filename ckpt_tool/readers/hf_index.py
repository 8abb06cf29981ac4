"""A model sharded the way transformers' ``save_pretrained`` shards it, read as one model:
``pytorch_model.bin.index.json`` or ``model.safetensors.index.json`` (``weight_map``: tensor name
-> shard file beside the index) and the shards it names, torch.save or safetensors files.

transformers loads every tensor of every shard the index names (``load_sharded_checkpoint``),
so the model is the shards' tensors in shard order; the index must name each of them, in the
shard that holds it.
"""

from __future__ import annotations

import json
from typing import Any

from ckpt_tool.containers.locations import base_name, join, parent, read_small
from ckpt_tool.errors import FormatError
from ckpt_tool.limits import Limits
from ckpt_tool.model.checkpoint import Checkpoint, TensorRef
from ckpt_tool.model.tree import named_tensors
from ckpt_tool.readers.parts import combine, read_part

INDEX_SUFFIX = ".index.json"
PREFERRED_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
"""The names ``from_pretrained`` looks for, in its order (safetensors first)."""


def parse_index(data: bytes) -> list[tuple[str, str]] | None:
    """(tensor name, shard file) pairs of an HF index document; None when it is not one."""
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    weight_map = document.get("weight_map") if isinstance(document, dict) else None
    if not isinstance(weight_map, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in weight_map.items()):
        return None
    return list(weight_map.items())


def looks_like_index(head: bytes) -> bool:
    """Cheap test on a file's first bytes: a JSON object naming a ``weight_map``."""
    return head.lstrip()[:1] == b"{" and b'"weight_map"' in head


def shard_names(pairs: list[tuple[str, str]]) -> list[str]:
    """The shard files, in the index's order; a name that leaves the index's folder fails."""
    shards = list(dict.fromkeys(shard for _, shard in pairs))
    for shard in shards:
        if not shard or shard.startswith("/") or ".." in shard.replace("\\", "/").split("/"):
            raise FormatError(f"the index names a shard {shard!r} outside its folder")
    return shards


def read_hf_index(path: str, limits: Limits) -> Checkpoint:
    data = read_small(path)
    pairs = parse_index(data)
    if pairs is None:
        raise FormatError("not an HF index (a JSON object with a weight_map)")
    if not pairs:
        raise FormatError("the index's weight_map is empty")
    folder = parent(path)
    parts = [read_part(join(folder, shard), limits) for shard in shard_names(pairs)]
    root = _merge(pairs, parts, limits)
    first = parts[0]
    version = (f"{first.format_version or first.format.value} ({len(parts)} shards of "
               f"{base_name(path)})")
    return combine(path, first.format, parts, root, version, {path: len(data)})


def _merge(pairs: list[tuple[str, str]], parts: list[Checkpoint], limits: Limits
           ) -> dict[str, Any]:
    expected = dict(pairs)
    root: dict[str, TensorRef] = {}
    holder: dict[str, str] = {}
    for part in parts:
        shard = base_name(part.path)
        for name, tensor in named_tensors(part.root, limits):
            if name in root:
                raise FormatError(f"tensor {name} is in both {holder[name]} and {shard}")
            if name in expected and base_name(expected[name]) != shard:
                raise FormatError(f"the index puts {name} in {expected[name]}, but it is in "
                                  f"{shard}")
            root[name], holder[name] = tensor, shard
    missing = [name for name in expected if name not in root]
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise FormatError(f"the index names {', '.join(missing[:3])}{more}, which no shard "
                          "holds")
    return root
