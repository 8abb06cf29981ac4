"""Every row of the dtype table agrees with torch, safetensors and numpy."""

from __future__ import annotations

import pytest
import torch

from ckpt_tool.model.dtypes import BY_SAFETENSORS, BY_STORAGE_CLASS, DTYPES, numpy_dtype


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.name)
def test_row_agrees_with_torch(dtype) -> None:
    torch_dtype = getattr(torch, dtype.name)
    assert torch_dtype.itemsize == dtype.itemsize
    assert torch_dtype.is_floating_point == dtype.is_floating
    assert torch_dtype.is_complex == dtype.is_complex
    if dtype.storage_class:
        assert getattr(torch, dtype.storage_class).dtype == torch_dtype
        assert BY_STORAGE_CLASS[dtype.storage_class] is dtype
    if dtype.safetensors:
        assert BY_SAFETENSORS[dtype.safetensors] is dtype
    if dtype.numpy and not dtype.name.startswith("q"):
        assert numpy_dtype(dtype).itemsize == dtype.itemsize


def test_storage_classes_cover_torch() -> None:
    names = set(torch.storage._dtype_to_storage_type_map().values())
    assert names == set(BY_STORAGE_CLASS)


def test_safetensors_codes_round_trip_through_safetensors(tmp_path) -> None:
    from safetensors.torch import load_file, save_file

    for dtype in DTYPES:
        if dtype.safetensors is None:
            continue
        path = tmp_path / f"{dtype.name}.safetensors"
        save_file({"x": torch.zeros(2, dtype=getattr(torch, dtype.name))}, str(path))
        import json
        import struct

        raw = path.read_bytes()
        (length,) = struct.unpack("<Q", raw[:8])
        assert json.loads(raw[8 : 8 + length])["x"]["dtype"] == dtype.safetensors
        assert load_file(str(path))["x"].dtype == getattr(torch, dtype.name)


@pytest.mark.parametrize("shape", [(), (1,), (5,), (3, 5), (2, 3, 7), (0, 4), (4, 0)])
@pytest.mark.parametrize("name", ["quint4x2", "quint2x4"])
def test_sub_byte_sizes_agree_with_torch(name: str, shape: tuple[int, ...]) -> None:
    """torch packs 2 (4) elements a byte and rounds each innermost row up to whole bytes."""
    import warnings

    dtype = next(d for d in DTYPES if d.name == name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tensor = torch.quantize_per_tensor(torch.zeros(shape), 0.1, 0, getattr(torch, name))
    assert dtype.nbytes_of(shape) == tensor.untyped_storage().nbytes()
