"""A tensor's output bytes, read from a memory map of the source.

A contiguous little-endian tensor written in its own dtype is its bytes in the file: a numpy view,
no copy. Anything else (a view with strides, a big-endian source, a ``--dtype`` cast) is
materialized in C order, in blocks of at most ``BLOCK_BYTES`` of the source, so one huge tensor
never needs its whole size in memory.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from ckpt_tool.convert.casting import cast_array
from ckpt_tool.convert.plan import Entry
from ckpt_tool.model.dtypes import numpy_dtype

BLOCK_BYTES = 16 << 20


def needs_materializing(entry: Entry, byteorder: str) -> bool:
    swap = byteorder == "big" and _component_size(entry) > 1
    return swap or entry.is_cast or not entry.tensor.is_contiguous


def file_view(mapped: Any, entry: Entry) -> Any:
    """The tensor's bytes in the map, as a uint8 numpy array (contiguous tensors only)."""
    import numpy as np

    offset = entry.tensor.offset
    assert offset is not None
    return np.frombuffer(mapped, np.uint8, count=entry.tensor.nbytes, offset=offset)


def output_blocks(mapped: Any, entry: Entry, byteorder: str,
                  block_bytes: int = BLOCK_BYTES) -> Iterator[Any]:
    """The tensor's output bytes (little-endian, C order, output dtype) as uint8 arrays."""
    import numpy as np

    if entry.tensor.numel == 0:
        return
    if not needs_materializing(entry, byteorder):
        view = file_view(mapped, entry)
        for start in range(0, view.size, block_bytes):
            yield view[start : start + block_bytes]
        return
    strided = _strided_view(mapped, entry)
    for block in _blocks(strided, max(1, block_bytes // entry.tensor.dtype.itemsize)):
        raw = _little_endian(np.ascontiguousarray(block), entry, byteorder)
        if entry.is_cast:
            values = raw.view(numpy_dtype(entry.tensor.dtype))
            raw = cast_array(values, entry.tensor.dtype, entry.dtype)
        yield raw.reshape(-1).view(np.uint8)


def _strided_view(mapped: Any, entry: Entry) -> Any:
    """Raw elements (``V<itemsize>``, never byte-swapped) with the tensor's shape and strides."""
    import numpy as np

    tensor = entry.tensor
    itemsize = tensor.dtype.itemsize
    strides = tuple(s * itemsize for s in tensor.stride)
    return np.ndarray(tensor.shape, dtype=np.dtype(f"V{itemsize}"), buffer=mapped,
                      offset=tensor.offset, strides=strides)


def _component_size(entry: Entry) -> int:
    """Complex numbers swap per real/imaginary part."""
    itemsize = entry.tensor.dtype.itemsize
    return itemsize // 2 if entry.tensor.dtype.is_complex else itemsize


def _little_endian(block: Any, entry: Entry, byteorder: str) -> Any:
    size = _component_size(entry)
    raw = block.reshape(-1).view(f"<u{size}" if size > 1 else "u1")
    if byteorder == "big" and size > 1:
        raw = raw.byteswap()
    return raw


def _blocks(array: Any, max_elements: int) -> Iterator[Any]:
    """C-order pieces of a strided array, each at most ``max_elements`` (a view, not a copy)."""
    if array.size <= max_elements or array.ndim == 0:
        yield array
    elif array.ndim == 1:
        for start in range(0, array.shape[0], max_elements):
            yield array[start : start + max_elements]
    else:
        row = math.prod(array.shape[1:])
        if row <= max_elements:
            step = max_elements // row
            for start in range(0, array.shape[0], step):
                yield array[start : start + step]
        else:
            for index in range(array.shape[0]):
                yield from _blocks(array[index], max_elements)
