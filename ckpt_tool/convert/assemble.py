"""A tensor's output bytes built in blocks, when they are not plain byte ranges of the sources: a
strided view, chunks that are not whole rows (DCP sharded along dim 1), a transposed chunk, a
big-endian source, a ``--dtype`` cast.

The output is cut into boxes that are each a run of consecutive output elements of at most
``BLOCK_BYTES``; each box is filled from every piece that meets it (a numpy view of a memory map,
or the byte span fetched from a URL), byte-swapped and cast, and handed out. Memory stays at one
box whatever the tensor's size.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from ckpt_tool.convert.casting import cast_array
from ckpt_tool.convert.pieces import Piece, needs_swap
from ckpt_tool.convert.plan import Entry
from ckpt_tool.convert.sources import SourceFiles
from ckpt_tool.errors import ConversionError
from ckpt_tool.model.dtypes import numpy_dtype

BLOCK_BYTES = 16 << 20

Box = tuple[tuple[int, ...], tuple[int, ...]]
"""(offsets, sizes) of a block of the whole tensor."""


def assembled_blocks(entry: Entry, pieces: list[Piece], files: SourceFiles, byteorder: str,
                     block_bytes: int = BLOCK_BYTES) -> Iterator[tuple[int, Any]]:
    """(byte offset in the tensor's output, uint8 array) for every block, in order."""
    import numpy as np

    shape = entry.tensor.shape
    raw = np.dtype(f"V{entry.tensor.dtype.itemsize}")
    for offsets, sizes in output_boxes(shape, max(1, block_bytes // entry.tensor.dtype.itemsize)):
        first = _ravel(offsets, shape)
        scratch = np.empty(sizes, raw)
        for piece in pieces:
            _fill(scratch, offsets, sizes, first, piece, files, shape)
        yield first * entry.dtype.itemsize, encode(scratch, entry, byteorder)


def output_boxes(shape: tuple[int, ...], max_elements: int) -> Iterator[Box]:
    """Boxes tiling a C-order array in order, each a run of consecutive elements: a range of
    indices on one dimension, single indices before it, whole dimensions after it. A box holds at
    most ``max_elements``, unless one element of its dimension is already larger (never past
    one innermost row)."""
    if math.prod(shape) == 0:
        return
    if not shape:
        yield (), ()
        return
    yield from _boxes(shape, (), max_elements)


def _boxes(shape: tuple[int, ...], prefix: tuple[int, ...], max_elements: int) -> Iterator[Box]:
    dim = len(prefix)
    rest = shape[dim + 1:]
    row = math.prod(rest)
    if row > max_elements and rest:
        for index in range(shape[dim]):
            yield from _boxes(shape, (*prefix, index), max_elements)
        return
    step = max(1, max_elements // row)
    for start in range(0, shape[dim], step):
        count = min(step, shape[dim] - start)
        yield (*prefix, start, *(0,) * len(rest)), ((1,) * dim + (count, *rest))


def _ravel(index: tuple[int, ...], shape: tuple[int, ...]) -> int:
    flat = 0
    for i, size in zip(index, shape, strict=True):
        flat = flat * size + i
    return flat


def _fill(scratch: Any, offsets: tuple[int, ...], sizes: tuple[int, ...], first: int,
          piece: Piece, files: SourceFiles, shape: tuple[int, ...]) -> None:
    """Copy the part of ``piece`` that falls in the box into ``scratch``."""
    if piece.flat:
        start = max(first, piece.offsets[0])
        end = min(first + scratch.size, piece.offsets[0] + piece.tensor.numel)
        if start < end:
            part = read_region(files, piece, (slice(start - piece.offsets[0],
                                                    end - piece.offsets[0]),))
            scratch.reshape(-1)[start - first:end - first] = part
        return
    low = [max(o, p) for o, p in zip(offsets, piece.offsets, strict=True)]
    high = [min(o + n, p + m) for o, n, p, m in
            zip(offsets, sizes, piece.offsets, piece.tensor.shape, strict=True)]
    if any(lo >= hi for lo, hi in zip(low, high, strict=True)):
        return
    source = tuple(slice(lo - p, hi - p) for lo, hi, p in zip(low, high, piece.offsets,
                                                               strict=True))
    target = tuple(slice(lo - o, hi - o) for lo, hi, o in zip(low, high, offsets, strict=True))
    scratch[target] = read_region(files, piece, source)


def read_region(files: SourceFiles, piece: Piece, region: tuple[slice, ...]) -> Any:
    """The piece's elements in ``region`` (raw ``V<itemsize>``, its own strides): a view of the
    map of a local file, or the bytes spanning the region fetched from a URL."""
    import numpy as np

    tensor = piece.tensor
    if tensor.offset is None:
        raise ConversionError("a piece of the tensor has no bytes in its file")
    itemsize = tensor.dtype.itemsize
    shape = tuple(s.stop - s.start for s in region)
    first = sum(s.start * step for s, step in zip(region, tensor.stride, strict=True))
    last = first + sum((n - 1) * step for n, step in zip(shape, tensor.stride, strict=True))
    start = tensor.offset + first * itemsize
    data = files.read(piece.file, start, (last - first + 1) * itemsize)
    strides = tuple(step * itemsize for step in tensor.stride)
    return np.ndarray(shape, np.dtype(f"V{itemsize}"), buffer=data, strides=strides)


def encode(raw: Any, entry: Entry, byteorder: str) -> Any:
    """Raw elements (C-contiguous) as output bytes: little-endian, in the output dtype."""
    import numpy as np

    dtype = entry.tensor.dtype
    component = dtype.itemsize // 2 if dtype.is_complex else dtype.itemsize
    values = raw.reshape(-1).view(f"<u{component}" if component > 1 else "u1")
    if needs_swap(entry, byteorder):
        values = values.byteswap()
    if entry.is_cast:
        values = cast_array(values.view(numpy_dtype(dtype)), dtype, entry.dtype)
    return values.reshape(-1).view(np.uint8)
