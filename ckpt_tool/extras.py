"""Optional dependencies, imported lazily in one place, with an error that names what to install.

The plain install (what the pre-commit hook gets) is typer and rich: inspect and lint need
nothing else, and neither does converting to safetensors a checkpoint whose tensors are copied as
they are. Computing on tensor bytes (a cast, a byte swap, a strided view) needs numpy (and
ml_dtypes for bfloat16 and float8); safetensors to ``.pt`` needs torch. The
messages name the packages to install from PyPI, where they are published.
"""

from __future__ import annotations

import importlib.util
from types import ModuleType

from ckpt_tool.errors import MissingExtra

TORCH_EXTRA = "pip install torch"
NUMPY_EXTRA = "pip install numpy ml_dtypes"
REMOTE_EXTRA = "pip install fsspec"


def require_torch(feature: str) -> ModuleType:
    """Import torch for ``feature``, or say how to install it."""
    try:
        import torch
    except ImportError:
        raise MissingExtra(f"{feature} needs PyTorch, which is not installed: "
                           f"{TORCH_EXTRA}") from None
    return torch


def numpy_missing() -> list[str]:
    """Which of numpy and ml_dtypes cannot be imported (found without importing them)."""
    missing = []
    for name in ("numpy", "ml_dtypes"):
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):  # sys.modules[name] is None: blocked
            found = False
        if not found:
            missing.append(name)
    return missing


def require_numpy(feature: str) -> None:
    """Check that numpy (and ml_dtypes) can be imported for ``feature``, without importing it."""
    missing = numpy_missing()
    if missing:
        raise MissingExtra(f"{feature} computes on tensor bytes and needs "
                           f"{' and '.join(missing)}, not installed: "
                           f"pip install {' '.join(missing)}")


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
