"""Optional dependencies, imported lazily in one place, with an error that names what to install."""

from __future__ import annotations

from types import ModuleType

from ckpt_tool.errors import MissingExtra

TORCH_EXTRA = "pip install 'ckpt-tool[torch]'"


def require_torch(feature: str) -> ModuleType:
    """Import torch for ``feature``, or say how to install it."""
    try:
        import torch
    except ImportError:
        raise MissingExtra(f"{feature} needs PyTorch, which is not installed: "
                           f"{TORCH_EXTRA}") from None
    return torch


REMOTE_EXTRA = "pip install 'ckpt-tool[remote]'"


def require_fsspec(scheme: str) -> ModuleType:
    """Import fsspec for a ``scheme://`` URL, or say how to install it."""
    try:
        import fsspec
    except ImportError:
        raise MissingExtra(
            f"reading {scheme}:// URLs needs fsspec, which is not installed: {REMOTE_EXTRA} "
            "(plus the scheme's backend, e.g. s3fs)"
        ) from None
    return fsspec
