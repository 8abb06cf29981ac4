"""Hypothesis strategies for the convert tests: checkpoints with every dtype and bit pattern,
views and tied tensors sharing storages, saved as zip, legacy or big-endian files."""

from __future__ import annotations

import io
from pathlib import Path

import torch
from hypothesis import strategies as st

from tests.torch_reference import _make_fixtures_module

DTYPES_TORCH = [torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.int8,
                torch.int64, torch.int32, torch.uint8, torch.bool, torch.complex64,
                torch.float8_e4m3fn, torch.float8_e5m2]
_SAME_SIZE_INT = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def random_bits(dtype: torch.dtype, shape: list[int], seed: int) -> torch.Tensor:
    """Any bit pattern (NaN, inf, subnormals included) of ``dtype``."""
    generator = torch.Generator().manual_seed(seed)
    if dtype == torch.bool:
        return torch.randint(0, 2, shape, generator=generator).bool()
    if dtype.is_complex:
        return torch.view_as_complex(random_bits(torch.float32, [*shape, 2], seed))
    integer = _SAME_SIZE_INT[dtype.itemsize]
    info = torch.iinfo(integer)
    bits = torch.randint(info.min, info.max, shape, dtype=integer, generator=generator)
    return bits.view(dtype)


VIEWS = {
    "whole": lambda t: t,
    "transposed": lambda t: t.transpose(0, -1),
    "tail": lambda t: t.reshape(-1)[1:],
    "stepped": lambda t: t.reshape(-1)[::2],
    "row": lambda t: t[-1],
    "expanded": lambda t: t.reshape(-1)[:2].unsqueeze(0).expand(3, -1),
}


@st.composite
def tensor_group(draw: st.DrawFn) -> list[torch.Tensor]:
    """Tensors sharing one storage: the base, views of it, and the same tensor twice (tied)."""
    dtype = draw(st.sampled_from(DTYPES_TORCH))
    shape = draw(st.lists(st.integers(1, 5), min_size=1, max_size=3))
    base = random_bits(dtype, shape, draw(st.integers(0, 2**16)))
    views = draw(st.lists(st.sampled_from(sorted(VIEWS)), min_size=1, max_size=3))
    return [VIEWS[view](base) for view in views]


keys = st.text(st.characters(codec="utf-8", exclude_characters="."), min_size=1, max_size=6)


@st.composite
def checkpoints(draw: st.DrawFn) -> dict:
    tree: dict = {}
    for group in draw(st.lists(tensor_group(), min_size=1, max_size=3)):
        for tensor in group:
            path = draw(st.lists(keys, min_size=1, max_size=3))
            node = tree
            for part in path[:-1]:
                node = node.setdefault(part, {}) if isinstance(node.get(part, {}), dict) else node
            node.setdefault(path[-1], tensor)
    if draw(st.booleans()):
        tree.setdefault("epoch", draw(st.integers(0, 100)))
    return tree


def save(tree: dict, path: Path, legacy: bool = False, big_endian: bool = False) -> None:
    buffer = io.BytesIO()
    torch.save(tree, buffer, _use_new_zipfile_serialization=not legacy)
    path.write_bytes(buffer.getvalue())
    if big_endian:
        make_big_endian(path)


def make_big_endian(path: Path) -> None:
    """Rewrite a zip checkpoint as a big-endian machine would have saved it (as the fixture)."""
    fixtures = _make_fixtures_module()
    members = fixtures.read_zip(path)
    root = members[0][0].split("/", 1)[0]
    dtypes = fixtures.storage_dtypes(dict(members)[f"{root}/data.pkl"])
    patched = {f"{root}/byteorder": b"big"}
    for name, data in members:
        if name.startswith(f"{root}/data/"):
            patched[name] = fixtures.byteswap(data, dtypes[name.rsplit("/", 1)[1]])
    fixtures.write_zip(path, [(name, patched.get(name, data)) for name, data in members])
