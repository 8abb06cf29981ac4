"""What keeps convert's memory small at 200,000 tensors, checked to change nothing it writes:
aliases found by storage before any region is built, the laid-out header let go once the file
holds it and it is checked."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from ckpt_tool.convert import to_safetensors
from ckpt_tool.convert.core import convert_file
from ckpt_tool.convert.options import ConvertOptions
from ckpt_tool.convert.plan import _region, fold_aliases
from ckpt_tool.model.checkpoint import Storage, TensorRef
from ckpt_tool.model.dtypes import dtype_named
from tests.convert_helpers import convert


def _fold_by_region(candidates: list[tuple[str, str, TensorRef]]
                    ) -> tuple[list[tuple[str, str, TensorRef]], dict[str, str]]:
    """The rule as first written: one region key for every tensor."""
    kept, first, aliases = [], {}, {}
    for name, source_name, tensor in candidates:
        region = _region(tensor)
        if tensor.numel and region in first:
            aliases[name] = first[region]
            continue
        first.setdefault(region, name)
        kept.append((name, source_name, tensor))
    return kept, aliases


@pytest.mark.parametrize("seed", range(20))
def test_aliases_are_those_of_one_region_key_per_tensor(seed: int) -> None:
    rng = random.Random(seed)
    f32 = dtype_named("float32")
    storages = [Storage(str(i), f32, 64, "cpu", 0) for i in range(4)]
    pieces = [TensorRef(f32, (2,), (1,)) for _ in range(2)]  # no storage of their own
    candidates: list[tuple[str, str, TensorRef]] = []
    for i in range(40):
        if rng.random() < 0.15:
            tensor = rng.choice(pieces)
        else:
            shape = rng.choice([(4,), (2, 2), (0,), (4,)])
            stride = (1,) if len(shape) == 1 else (2, 1)
            tensor = TensorRef(f32, shape, stride, rng.choice([0, 0, 4]), rng.choice(storages))
        candidates.append((f"t{i}", f"t{i}", tensor))
    kept, aliases = fold_aliases(candidates, copy_shared=False)
    assert (kept, aliases) == _fold_by_region(candidates)
    assert fold_aliases(candidates, copy_shared=True) == (candidates, {})


def test_tied_weights_still_fold_end_to_end(tmp_path: Path) -> None:
    weight = torch.arange(6.0).reshape(2, 3)
    source = tmp_path / "tied.pt"
    torch.save({"wte.weight": weight, "lm_head.weight": weight, "bias": weight[0]}, source)
    out = tmp_path / "tied.safetensors"
    convert(source, out)
    assert sorted(load_file(out)) == ["bias", "wte.weight"]


def test_a_header_that_differs_in_the_file_is_caught(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    real = to_safetensors.write_all

    def damaging(fd: int, data: Any, at: int) -> None:
        damaged = bytearray(data)
        if at == 0:
            damaged[20] ^= 0x01
        real(fd, damaged, at)

    monkeypatch.setattr(to_safetensors, "write_all", damaging)
    source = tmp_path / "small.pt"
    torch.save({"w": torch.arange(4.0)}, source)
    out = tmp_path / "small.safetensors"
    result = convert_file(str(source), str(out), ConvertOptions())
    assert not result.ok and "the header differs from the one written at byte 20" in str(
        result.error)
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["small.pt"]
