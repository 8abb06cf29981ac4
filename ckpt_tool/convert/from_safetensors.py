"""safetensors to ``torch.save``'s format: needs the torch extra.

The tensors are loaded with ``safetensors.torch.load_file`` and saved as one flat state_dict.
Names that a ckpt or safetensors conversion folded into the metadata as tied weights
(``{dropped: kept}``) are tied again, so the state_dict has every name it had before.
"""

from __future__ import annotations

from typing import Any

from ckpt_tool.convert.atomic import Staging
from ckpt_tool.convert.plan import FORMAT_KEY
from ckpt_tool.convert.progress import Meter
from ckpt_tool.errors import ConversionError
from ckpt_tool.extras import require_torch
from ckpt_tool.model.checkpoint import Checkpoint


def safetensors_to_torch(checkpoint: Checkpoint, dest: str, staging: Staging, verify: bool,
                         meter: Meter) -> list[str]:
    """Stage ``dest``; return notes about metadata the .pt file cannot carry."""
    torch = require_torch("converting safetensors to a torch.save file")
    from safetensors.torch import load_file

    meter.grow(checkpoint.size * (2 if verify else 1))
    tensors: dict[str, Any] = dict(load_file(checkpoint.path))
    metadata = dict(checkpoint.safetensors_metadata or {})
    tied = {alias: kept for alias, kept in metadata.items()
            if alias not in tensors and kept in tensors}
    for alias, kept in tied.items():
        tensors[alias] = tensors[kept]
    output = staging.open_for(dest)
    torch.save(tensors, output)
    output.flush()
    meter.add(checkpoint.size)
    if verify:
        output.seek(0)
        _compare(torch, torch.load(output, map_location="cpu", weights_only=True), tensors)
        meter.add(checkpoint.size)
    notes = []
    if tied:
        notes.append(f"tied again: {', '.join(sorted(tied))}")
    dropped = sorted(set(metadata) - set(tied) - {FORMAT_KEY})
    if dropped:
        notes.append(f"metadata not carried into the .pt file: {', '.join(dropped[:10])}")
    return notes


def _compare(torch: Any, loaded: Any, expected: dict[str, Any]) -> None:
    if not isinstance(loaded, dict) or set(loaded) != set(expected):
        raise ConversionError("verification failed: the saved file's names differ")
    for name, tensor in expected.items():
        got = loaded[name]
        same = got.dtype == tensor.dtype and got.shape == tensor.shape and (
            tensor.numel() == 0 or torch.equal(got.reshape(-1).view(torch.uint8),
                                               tensor.reshape(-1).view(torch.uint8)))
        if not same:
            raise ConversionError(f"verification failed: tensor {name} differs after saving")
