"""Our reader against torch.load on the same files: names, dtypes, shapes, strides, devices, and
the bytes at every reported offset."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ckpt_tool.model.tree import named_tensors
from ckpt_tool.readers import open_checkpoint
from tests.conftest import FIXTURES, MALICIOUS, TORCH_FIXTURES
from tests.torch_reference import flatten, load_reference, storage_bytes

BENIGN = [name for name in TORCH_FIXTURES if name not in MALICIOUS]


def _file_bytes(path: Path, offset: int, length: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(length)


def _swap(data: bytes, itemsize: int) -> bytes:
    if itemsize == 1:
        return data
    return b"".join(data[i : i + itemsize][::-1] for i in range(0, len(data), itemsize))


def assert_matches_torch(path: Path) -> None:
    checkpoint = open_checkpoint(path)
    ours = dict(named_tensors(checkpoint.root))
    theirs = flatten(load_reference(str(path)))
    assert sorted(ours) == sorted(theirs)
    for name, expected in theirs.items():
        got = ours[name]
        assert got.dtype.name == str(expected.dtype).removeprefix("torch."), name
        assert got.shape == tuple(expected.shape), name
        if expected.layout != torch.strided:
            assert got.layout == str(expected.layout).removeprefix("torch."), name
            continue
        assert got.stride == expected.stride(), name
        assert got.storage_offset == expected.storage_offset(), name
        assert got.requires_grad == expected.requires_grad, name
        if got.device != "cpu":
            continue  # loaded with map_location="cpu"; the saved device is checked elsewhere
        assert got.storage is not None and got.storage.offset is not None
        data = _file_bytes(path, got.storage.offset, got.storage.nbytes)
        if checkpoint.byteorder == "big":
            data = _swap(data, got.dtype.itemsize)
        assert data == storage_bytes(expected)[: got.storage.nbytes], name
        assert got.offset == got.storage.offset + got.storage_offset * got.dtype.itemsize


@pytest.mark.parametrize("name", BENIGN)
def test_fixture_matches_torch(name: str) -> None:
    assert_matches_torch(FIXTURES / name)


def test_saved_device_is_reported() -> None:
    checkpoint = open_checkpoint(FIXTURES / "device_cuda.pt")
    devices = {t.device for _, t in named_tensors(checkpoint.root)}
    assert devices == {"cuda:0"}


def test_big_endian_archive_is_reported() -> None:
    assert open_checkpoint(FIXTURES / "bigendian.pt").byteorder == "big"
    assert open_checkpoint(FIXTURES / "state_dict.pt").byteorder == "little"


DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.int8, torch.int64, torch.bool,
          torch.uint8, torch.float64, torch.complex64, torch.float8_e4m3fn]


@st.composite
def tensors(draw: st.DrawFn) -> torch.Tensor:
    dtype = draw(st.sampled_from(DTYPES))
    shape = draw(st.lists(st.integers(0, 4), min_size=0, max_size=3))
    numel = 1
    for n in shape:
        numel *= n
    base = torch.arange(numel, dtype=torch.float64).to(dtype).reshape(shape)
    if len(shape) >= 2 and draw(st.booleans()):
        base = base.transpose(0, 1)
    if draw(st.booleans()):
        base = torch.nn.Parameter(base, requires_grad=False) if dtype.is_floating_point else base
    return base


keys = st.text(st.characters(codec="utf-8", exclude_characters="."), min_size=1, max_size=8)
trees = st.recursive(
    tensors() | st.integers() | st.text(max_size=5) | st.none(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=st.dictionaries(keys, trees, min_size=1, max_size=5), legacy=st.booleans())
def test_generated_checkpoints_match_torch(tree: dict, legacy: bool, tmp_path_factory) -> None:
    if legacy and any(t.dtype == torch.float8_e4m3fn for t in flatten(tree).values()):
        legacy = False  # torch cannot load the legacy float8 files it writes (no storage class)
    path = tmp_path_factory.mktemp("gen") / "generated.pt"
    buffer = io.BytesIO()
    torch.save(tree, buffer, _use_new_zipfile_serialization=not legacy)
    path.write_bytes(buffer.getvalue())
    assert_matches_torch(path)
    os.unlink(path)


def test_record_names_are_looked_up_without_case_as_torch_does(tmp_path: Path) -> None:
    """torch's zip reader (miniz) finds DATA.PKL and Data/0 when asked for data.pkl, data/0."""
    import zipfile

    buffer = io.BytesIO()
    torch.save({"w": torch.arange(3.0)}, buffer)
    source = zipfile.ZipFile(io.BytesIO(buffer.getvalue()))
    path = tmp_path / "cases.pt"
    with zipfile.ZipFile(path, "w") as target:
        for info in source.infolist():
            renamed = info.filename.replace("data.pkl", "DATA.PKL").replace("/data/0", "/Data/0")
            target.writestr(renamed, source.read(info))
    assert_matches_torch(path)
