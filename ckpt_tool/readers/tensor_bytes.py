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

    if tensor.chunks:
        raise ValueError("it is saved in chunks: read it through TensorFiles")
    if tensor.offset is None:
        raise ValueError("its bytes are not in the file")
    if tensor.kind in ("quantized", "sparse") or tensor.dtype.numpy is None:
        raise ValueError(f"values of a {tensor.kind} {tensor.dtype.name} tensor are not compared")
    itemsize = tensor.dtype.itemsize
    array = np.ndarray(tensor.shape, dtype=numpy_dtype(tensor.dtype, byteorder), buffer=mapped,
                       offset=tensor.offset, strides=tuple(s * itemsize for s in tensor.stride))
    return array.reshape(-1) if tensor.is_contiguous else array.ravel()


class TensorFiles:
    """Memory maps of every file a checkpoint's tensors live in, each opened once when first
    needed: the checkpoint's own file, or the file a storage names (a DCP folder's data files)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._maps: dict[str, mmap.mmap] = {}
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> TensorFiles:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._maps.clear()
        self._stack.close()

    def map_for(self, tensor: TensorRef) -> mmap.mmap:
        storage = tensor.storage
        path = storage.file if storage is not None and storage.file else self.path
        mapped = self._maps.get(path)
        if mapped is None:
            mapped = self._maps[path] = self._stack.enter_context(open_map(path))
        return mapped

    def pieces(self, tensor: TensorRef, byteorder: str = "little") -> Iterator:
        """The tensor's elements in flat pieces whose order does not matter (statistics): each
        chunk of a chunked tensor as it lies in its file, or the whole tensor."""
        if tensor.chunks:
            for chunk in tensor.chunks:
                yield flat_view(self.map_for(chunk.tensor), chunk.tensor, byteorder)
        else:
            yield flat_view(self.map_for(tensor), tensor, byteorder)

    def values(self, tensor: TensorRef, byteorder: str = "little"):  # -> np.ndarray
        """The tensor's elements in C order, one-dimensional. A chunked tensor is assembled in
        memory (one tensor's size); any other is a view of its file when contiguous."""
        if not tensor.chunks:
            return flat_view(self.map_for(tensor), tensor, byteorder)
        import numpy as np

        if tensor.dtype.numpy is None:
            raise ValueError(f"values of a {tensor.dtype.name} tensor are not compared")
        whole = np.empty(tensor.shape, dtype=numpy_dtype(tensor.dtype, byteorder))
        for chunk in tensor.chunks:
            piece = flat_view(self.map_for(chunk.tensor), chunk.tensor, byteorder)
            if chunk.flat:  # a run of C-order elements (a ZeRO partition's slice)
                whole.reshape(-1)[chunk.offsets[0]:chunk.offsets[0] + piece.size] = piece
                continue
            place = tuple(slice(start, start + size)
                          for start, size in zip(chunk.offsets, chunk.sizes, strict=True))
            whole[place] = piece.reshape(chunk.sizes)
        return whole.reshape(-1)
