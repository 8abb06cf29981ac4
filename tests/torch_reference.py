"""How torch itself sees a checkpoint: named tensors from ``torch.load``, flattened by the rules
ckpt documents, so tests can compare the two readers."""

from __future__ import annotations

import argparse
from typing import Any

import torch


def _make_fixtures_module() -> Any:
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "fixtures" / "make_fixtures.py"
    spec = importlib.util.spec_from_file_location("make_fixtures", script)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_reference(path: str) -> Any:
    """torch's view of a benign file (custom classes come from fixtures/make_fixtures.py)."""
    if _is_torchscript(path):
        return torch.jit.load(path, map_location="cpu")
    with _make_fixtures_module().fixture_models_module():
        return torch.load(path, map_location="cpu", weights_only=False)


def _is_torchscript(path: str) -> bool:
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith("/constants.pkl") for name in archive.namelist())
    except zipfile.BadZipFile:
        return False


def flatten(value: Any, prefix: str = "") -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    join = (lambda k: f"{prefix}.{k}") if prefix else str
    if isinstance(value, torch.Tensor):
        out[prefix] = value
    elif isinstance(value, dict):
        for key, item in value.items():
            out.update(flatten(item, join(key)))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            out.update(flatten(item, join(index)))
    elif isinstance(value, torch.nn.Module):
        tensors = dict(value.named_parameters(recurse=True))
        tensors.update(dict(value.named_buffers(recurse=True)))
        out.update(flatten(tensors, prefix))
    elif isinstance(value, argparse.Namespace):
        out.update(flatten(vars(value), prefix))
    return out


def storage_bytes(tensor: torch.Tensor) -> bytes:
    if tensor.is_quantized:
        return bytes(tensor.untyped_storage())
    return bytes(tensor.untyped_storage().cpu())


def torch_accepts(path: str) -> bool:
    """Does ``torch.load(path, weights_only=True)`` load the file?"""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.load(path, weights_only=True, map_location="cpu")
        except Exception:
            return False
    return True
