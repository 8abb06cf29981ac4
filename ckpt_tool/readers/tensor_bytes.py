"""Tensor bytes as numpy arrays over a memory map of the file (numpy imported only here)."""

from __future__ import annotations

import contextlib
import mmap
from collections.abc import Iterator
from contextlib import contextmanager

from ckpt_tool.model.checkpoint import TensorRef
from ckpt_tool.model.dtypes import numpy_dtype


@contextmanager
def open_map(path: str) -> Iterator[mmap.mmap]:
    """Map ``path`` read-only. A numpy view still alive at the end (one held by a traceback) keeps
    the map open until it is freed, instead of masking the error being raised."""
    with open(path, "rb") as file:
        if file.seek(0, 2) == 0:
            raise ValueError("empty file")
        mapped = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
    try:
        yield mapped
    finally:
        with contextlib.suppress(BufferError):
            mapped.close()


def flat_view(mapped: mmap.mmap, tensor: TensorRef, byteorder: str = "little"):  # -> np.ndarray
    """The tensor's elements in order, one-dimensional: a view when contiguous, else a copy."""
    import numpy as np

    if tensor.offset is None:
        raise ValueError("its bytes are not in the file")
    if tensor.kind in ("quantized", "sparse") or tensor.dtype.numpy is None:
        raise ValueError(f"values of a {tensor.kind} {tensor.dtype.name} tensor are not compared")
    itemsize = tensor.dtype.itemsize
    array = np.ndarray(tensor.shape, dtype=numpy_dtype(tensor.dtype, byteorder), buffer=mapped,
                       offset=tensor.offset, strides=tuple(s * itemsize for s in tensor.stride))
    return array.reshape(-1) if tensor.is_contiguous else array.ravel()
