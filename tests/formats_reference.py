"""torch's own view of the fixtures in ``fixtures/formats/``: every tensor torch.load or
torch.jit.load builds, under the name ckpt documents for it, found with torch's APIs (never with
ckpt's walk):

- a TorchScript module: torch's ``named_attributes`` (recursive), a list or dict attribute by index
  or key, what a scripted class's or ``torch.ScriptObject``'s ``__getstate__`` returns by position,
  and the constants ``code_with_constants`` names ``CONSTANTS.c0``...;
- a pickled module: its ``state_dict()``, tuples by position (``_packed_params._packed_params.0``);
- a ``torch.ScriptObject``: its ``__getstate__()`` payload by position;
- dicts, lists, tuples by key and index; nested tensors and DTensors as one value each.
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tests.conftest import FIXTURES

FORMATS = FIXTURES / "formats"


@contextlib.contextmanager
def fixture_classes() -> Iterator[None]:
    """``gen_formats`` importable, as when the fixtures were written (their classes live there)."""
    had = sys.modules.get("gen_formats")
    if had is None:
        spec = importlib.util.spec_from_file_location("gen_formats",
                                                      FIXTURES / "gen_formats.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules["gen_formats"] = module
        spec.loader.exec_module(module)
    try:
        yield
    finally:
        if had is None:
            sys.modules.pop("gen_formats", None)


def is_torchscript(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith("/constants.pkl") for name in archive.namelist())
    except zipfile.BadZipFile:  # Python's zipfile refuses some archives miniz reads
        return False


def load(path: Path) -> Any:
    with fixture_classes(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if is_torchscript(path):
            return torch.jit.load(str(path), map_location="cpu")
        return torch.load(path, map_location="cpu", weights_only=False)


def torch_tensors(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor of the file as torch loads it, by name."""
    loaded = load(path)
    if isinstance(loaded, torch.jit.ScriptModule):
        return script_tensors(loaded)
    return flatten(loaded)


def script_tensors(module: torch.jit.ScriptModule) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    attributes = torch._C._jit_debug_module_iterators(module._c)["named_attributes_r"]
    for name, value in attributes:
        if not isinstance(value, torch._C.ScriptModule):
            out.update(flatten(value, name))
    for _, submodule in module.named_modules():
        for name, constant in submodule.code_with_constants[1].const_mapping.items():
            out.update(flatten(constant, f"CONSTANTS.{name}"))
    return out


def flatten(value: Any, prefix: str = "") -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    join = (lambda key: f"{prefix}.{key}") if prefix else str
    if isinstance(value, torch.Tensor):
        out[prefix] = value
    elif isinstance(value, dict):
        for key, item in value.items():
            out.update(flatten(item, join(key)))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            out.update(flatten(item, join(index)))
    elif isinstance(value, nn.Module):
        out.update(flatten(dict(value.state_dict(keep_vars=True)), prefix))
    elif isinstance(value, torch.ScriptObject):
        out.update(flatten(value.__getstate__()[0], prefix))
    elif hasattr(value, "__getstate__") and type(value).__module__ == "gen_formats":
        out.update(flatten(value.__getstate__(), prefix))  # a scripted class of the fixtures
    return out


def storage_bytes(tensor: torch.Tensor) -> bytes:
    return bytes(tensor.untyped_storage())


def nested_parts(tensor: torch.Tensor) -> dict[str, torch.Tensor]:
    """A nested tensor's parts, as torch keeps them (the names ckpt lists as components)."""
    if tensor.layout == torch.jagged:
        parts = {"values": tensor._values, "offsets": tensor._offsets}
        if tensor._lengths is not None:
            parts["lengths"] = tensor._lengths
        return parts
    return {"buffer": tensor.values(), "sizes": tensor._nested_tensor_size(),
            "strides": tensor._nested_tensor_strides(),
            "storage_offsets": tensor._nested_tensor_storage_offsets()}
