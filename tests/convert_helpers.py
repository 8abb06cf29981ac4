"""Shared by the convert tests: run a conversion, read outputs back with torch and safetensors,
compare tensors bit for bit."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file

from ckpt_tool.convert.core import convert_file
from ckpt_tool.convert.options import ConvertOptions, ConvertResult


def convert(source: Path, dest: Path, **options: Any) -> ConvertResult:
    result = convert_file(str(source), str(dest), ConvertOptions(**options))
    assert result.ok, result.error
    return result


def raw(tensor: torch.Tensor) -> bytes:
    """The tensor's elements in C order, as bytes (views and offsets resolved)."""
    return bytes(tensor.detach().contiguous().clone().untyped_storage())


def same_bits(got: torch.Tensor, expected: torch.Tensor) -> bool:
    return (got.dtype == expected.dtype and got.shape == expected.shape
            and raw(got) == raw(expected))


def metadata_of(path: Path) -> dict[str, str]:
    with safe_open(str(path), framework="numpy") as reader:
        return reader.metadata() or {}


def load_with_aliases(path: Path) -> dict[str, torch.Tensor]:
    """The output's tensors under every name, aliases from the metadata resolved."""
    tensors = load_file(str(path))
    for alias, kept in metadata_of(path).items():
        if alias not in tensors and kept in tensors:
            tensors[alias] = tensors[kept]
    return tensors


def load_sharded(index: Path) -> dict[str, torch.Tensor]:
    weight_map = json.loads(index.read_text())["weight_map"]
    tensors: dict[str, torch.Tensor] = {}
    for shard in sorted(set(weight_map.values())):
        part = load_file(str(index.parent / shard))
        assert {name for name, file in weight_map.items() if file == shard} == set(part)
        tensors.update(part)
    return tensors


def assert_tensors_equal(got: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    assert sorted(got) == sorted(expected)
    for name, tensor in expected.items():
        assert same_bits(got[name], tensor), name


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
