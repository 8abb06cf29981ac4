"""What a file's name says it holds, to compare with what its bytes hold."""

from __future__ import annotations

import os

from ckpt_tool.containers.detect import Kind
from ckpt_tool.containers.suffixes import (
    CHECKPOINT_SUFFIXES,
    PICKLE_SUFFIXES,
    SAFETENSORS_SUFFIX,
    TORCH_SUFFIXES,
)

WEAK_SUFFIXES = (".bin",)
"""Also used for data that is not a model: its content is only checked if it is a checkpoint."""


_EXPECTED: dict[str, tuple[Kind, ...]] = {
    **{suffix: (Kind.ZIP, Kind.LEGACY) for suffix in TORCH_SUFFIXES},
    **{suffix: (Kind.PICKLE, Kind.ZIP, Kind.LEGACY) for suffix in PICKLE_SUFFIXES},
    SAFETENSORS_SUFFIX: (Kind.SAFETENSORS,),
}


def checkpoint_suffix(path: str) -> str | None:
    """The checkpoint extension the name ends with (``.pth.tar`` before ``.tar``), lower-cased."""
    name = os.path.basename(path).lower()
    return next((suffix for suffix in CHECKPOINT_SUFFIXES if name.endswith(suffix)), None)


def named_as_checkpoint(path: str) -> bool:
    """The name promises a checkpoint strongly enough that other content is a finding."""
    suffix = checkpoint_suffix(path)
    return suffix is not None and suffix not in WEAK_SUFFIXES


def is_pth(path: str) -> bool:
    """site.py reads names ending in exactly ``.pth`` (case-sensitive) as path-config files."""
    return os.path.basename(path).endswith(".pth")


def expected_kinds(path: str) -> tuple[Kind, ...] | None:
    suffix = checkpoint_suffix(path)
    return _EXPECTED[suffix] if suffix else None
