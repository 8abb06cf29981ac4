"""The names checkpoints go by. Only names: what a file holds is told from its bytes."""

from __future__ import annotations

import os

TORCH_SUFFIXES = (".pth.tar", ".ckpt", ".pwf", ".pth", ".pt", ".bin")
PICKLE_SUFFIXES = (".pkl", ".pickle")
SAFETENSORS_SUFFIX = ".safetensors"
CHECKPOINT_SUFFIXES = (*TORCH_SUFFIXES, SAFETENSORS_SUFFIX, *PICKLE_SUFFIXES)


def stem(path: str) -> str:
    """The file name without its checkpoint extension (``model.pth.tar`` -> ``model``)."""
    name = os.path.basename(path)
    lowered = name.lower()
    for suffix in CHECKPOINT_SUFFIXES:
        if lowered.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return os.path.splitext(name)[0] or name
