"""Per-tensor statistics, streamed with numpy from a memory map: the one mode that reads bytes."""

from __future__ import annotations

import math
from collections.abc import Callable

from ckpt_tool.model.checkpoint import TensorRef
from ckpt_tool.model.record import Record
from ckpt_tool.readers.tensor_bytes import TensorFiles

_CHUNK_ELEMENTS = 1 << 22


class TensorStats(Record):
    __slots__ = ("min", "max", "mean", "std", "nan", "inf", "note")
    min: float | None
    max: float | None
    mean: float | None
    std: float | None
    nan: int
    inf: int
    note: str | None

    def __init__(self, min: float | None, max: float | None, mean: float | None, std: float | None,
                 nan: int, inf: int, note: str | None = None) -> None:
        self.min = min
        self.max = max
        self.mean = mean
        self.std = std
        self.nan = nan
        self.inf = inf
        self.note = note


def _skip(note: str) -> TensorStats:
    return TensorStats(None, None, None, None, 0, 0, note)


def tensor_stats(files: TensorFiles, tensor: TensorRef, byteorder: str = "little",
                 on_bytes: Callable[[int], None] | None = None) -> TensorStats:
    """``on_bytes(n)`` is told of each block of ``n`` bytes read (for a progress bar)."""
    if tensor.kind in ("nested", "sparse"):
        return _skip(f"not computed for {tensor.kind}")
    if tensor.offset is None and not tensor.chunks:
        return _skip("no data in the file")
    if tensor.kind == "quantized" or tensor.dtype.is_complex or tensor.dtype.numpy is None:
        what = tensor.kind if tensor.kind == "quantized" else tensor.dtype.name
        return _skip(f"not computed for {what}")
    if tensor.numel == 0:
        return _skip("empty")
    acc = _Accumulator()
    for flat in files.pieces(tensor, byteorder):  # order does not matter: chunks as they lie
        for start in range(0, flat.size, _CHUNK_ELEMENTS):
            block = flat[start : start + _CHUNK_ELEMENTS]
            acc.add(block)
            if on_bytes is not None:
                on_bytes(block.size * tensor.dtype.itemsize)
    return acc.result()


class _Accumulator:
    """Chan et al.'s pairwise update of count, mean and squared deviations, chunk by chunk."""

    def __init__(self) -> None:
        self.count = self.nan = self.inf = 0
        self.mean = self.m2 = 0.0
        self.low, self.high = math.inf, -math.inf

    def add(self, chunk) -> None:  # chunk: numpy array
        import numpy as np

        values = chunk.astype(np.float64)
        nan_mask = np.isnan(values)
        inf_mask = np.isinf(values)
        self.nan += int(nan_mask.sum())
        self.inf += int(inf_mask.sum())
        finite = values[~(nan_mask | inf_mask)] if self.nan or self.inf else values
        if not finite.size:
            return
        self.low = min(self.low, float(finite.min()))
        self.high = max(self.high, float(finite.max()))
        n_b = int(finite.size)
        mean_b = float(finite.mean())
        m2_b = float(np.square(finite - mean_b).sum())
        n = self.count + n_b
        delta = mean_b - self.mean
        self.mean += delta * n_b / n
        self.m2 += m2_b + delta * delta * self.count * n_b / n
        self.count = n

    def result(self) -> TensorStats:
        if not self.count:
            return TensorStats(None, None, None, None, self.nan, self.inf, "no finite values")
        std = math.sqrt(self.m2 / (self.count - 1)) if self.count > 1 else None
        return TensorStats(self.low, self.high, self.mean, std, self.nan, self.inf)
