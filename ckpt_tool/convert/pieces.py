"""Where a tensor's output bytes come from: the pieces of the source files that make it.

A plain tensor is one piece, the whole. A tensor saved in chunks (a DCP folder, per-rank DTensor
files, ZeRO partitions) is one piece per chunk, each placed in the whole. When nothing needs
changing on the way (no cast, no byte swap) and every piece is C-contiguous in its file and lands
on consecutive elements of the output (a chunk along dim 0, a flat ZeRO slice), the tensor is a
list of byte ranges to copy; anything else is assembled through a bounded buffer (assemble.py).
"""

from __future__ import annotations

from ckpt_tool.convert.plan import Entry
from ckpt_tool.model.checkpoint import Chunk, TensorRef
from ckpt_tool.model.chunks import flat_range
from ckpt_tool.model.record import Record


class Piece(Record):
    """``file``: path or URL of the file holding its bytes; ``tensor``: its own layout (shape,
    stride, storage offset; its storage: the byte offset); ``offsets``: its place in the whole
    tensor (one C-order element index when ``flat``)."""

    __slots__ = ("file", "flat", "offsets", "tensor")

    def __init__(self, file: str, tensor: TensorRef, offsets: tuple[int, ...],
                 flat: bool = False) -> None:
        self.file, self.tensor, self.offsets, self.flat = file, tensor, offsets, flat


class Run(Record):
    """Bytes to copy as they are: ``length`` bytes of ``file`` from ``offset`` go to byte ``at``
    of the tensor's output. ``crc``: (CRC-32, record name) when the run is one whole zip record:
    the copy is checked against the CRC the zip holds."""

    __slots__ = ("at", "crc", "file", "length", "offset")

    def __init__(self, file: str, offset: int, length: int, at: int,
                 crc: tuple[int, str] | None = None) -> None:
        self.file, self.offset, self.length, self.at, self.crc = file, offset, length, at, crc


def pieces_of(tensor: TensorRef, own_file: str) -> list[Piece]:
    """Every piece holding some of the tensor's elements (empty chunks left out)."""
    if not tensor.chunks:
        return [Piece(_file_of(tensor, own_file), tensor, (0,) * len(tensor.shape))]
    return [Piece(_file_of(chunk.tensor, own_file), chunk.tensor, chunk.offsets, chunk.flat)
            for chunk in tensor.chunks if chunk.tensor.numel]


def _file_of(tensor: TensorRef, own_file: str) -> str:
    storage = tensor.storage
    return storage.file if storage is not None and storage.file else own_file


def _whole_record(tensor: TensorRef, offset: int, length: int) -> tuple[int, str] | None:
    storage = tensor.storage
    if (storage is None or storage.crc32 is None or offset != storage.offset
            or length != storage.nbytes or not length):
        return None
    return storage.crc32, storage.record or storage.key


def needs_swap(entry: Entry, byteorder: str) -> bool:
    dtype = entry.tensor.dtype
    component = dtype.itemsize // 2 if dtype.is_complex else dtype.itemsize
    return byteorder == "big" and component > 1


def byte_runs(entry: Entry, pieces: list[Piece], byteorder: str) -> list[Run] | None:
    """The entry's output as byte copies in output order, or None when some byte must change or
    some piece is not one range of the source landing on one range of the output."""
    if entry.is_cast or needs_swap(entry, byteorder):
        return None
    itemsize = entry.tensor.dtype.itemsize
    if len(pieces) == 1 and pieces[0].tensor is entry.tensor:  # a plain tensor: the common case
        tensor, offset = entry.tensor, entry.tensor.offset
        if offset is None or not tensor.is_contiguous:
            return None
        length = tensor.numel * itemsize
        return [Run(pieces[0].file, offset, length, 0, _whole_record(tensor, offset, length))]
    runs = []
    for piece in pieces:
        offset = piece.tensor.offset
        if offset is None or not piece.tensor.is_contiguous:
            return None
        span = flat_range(Chunk(piece.offsets, piece.tensor, piece.flat), entry.tensor.shape)
        if span is None:
            return None
        length = piece.tensor.numel * itemsize
        runs.append(Run(piece.file, offset, length, span[0] * itemsize,
                        _whole_record(piece.tensor, offset, length)))
    runs.sort(key=lambda run: run.at)
    return runs
