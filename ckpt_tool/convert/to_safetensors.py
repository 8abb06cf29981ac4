"""Write a plan as safetensors, streaming tensor bytes from a memory map of the source.

No torch: ``safetensors.serialize_file`` takes ``TensorSpec(dtype, shape, data_ptr, data_len)``
(safetensors >= 0.8) and copies from those addresses into the file. A contiguous tensor's
address is inside the source's map, so its bytes go from the page cache straight to the output.
Tensors that must be materialized (strided views, casts, byte swaps) are written block by block
to an unnamed scratch file in the destination's folder, which is then mapped the same way: memory
stays flat whatever the file or tensor size, and the scratch vanishes with the process.
"""

from __future__ import annotations

import tempfile
from typing import Any

from ckpt_tool.convert.atomic import Staging
from ckpt_tool.convert.plan import Entry, Plan
from ckpt_tool.convert.progress import Meter
from ckpt_tool.convert.shards import index_file, index_json, shard_files, split_shards
from ckpt_tool.convert.tensordata import file_view, needs_materializing, output_blocks
from ckpt_tool.convert.verify import verify_safetensors
from ckpt_tool.errors import ConversionError
from ckpt_tool.model.checkpoint import Checkpoint
from ckpt_tool.readers.tensor_bytes import open_map


def write_safetensors(checkpoint: Checkpoint, plan: Plan, dest: str, staging: Staging,
                      shard_size: int | None, verify: bool, meter: Meter) -> list[str]:
    """Stage the output file(s) for ``dest``; return their final paths (index last)."""
    shards = split_shards(plan.entries, shard_size)
    files = shard_files(dest, len(shards))
    meter.grow(plan.total_bytes * (2 if verify else 1))
    with open_map(checkpoint.path) as source_map:
        for shard, file in zip(shards, files, strict=True):
            path = staging.path_for(file)
            _write_shard(shard, path, file, plan.metadata, source_map, checkpoint.byteorder,
                         staging, meter)
            if verify:
                verify_safetensors(path, shard, plan.metadata, source_map, checkpoint.byteorder,
                                   meter)
    if len(shards) == 1:
        return files
    index = index_file(dest)
    staging.open_for(index).write(index_json(shards, files).encode("utf-8"))
    return [*files, index]


def _write_shard(entries: list[Entry], path: str, dest: str, metadata: dict[str, str],
                 source_map: Any, byteorder: str, staging: Staging, meter: Meter) -> None:
    """Write ``entries`` to ``path`` (a staged file that becomes ``dest``)."""
    from safetensors import SafetensorError, serialize_file

    with _Scratch(staging.folder) as scratch:
        for entry in entries:
            if needs_materializing(entry, byteorder) and entry.tensor.numel:
                scratch.add(entry.name, output_blocks(source_map, entry, byteorder), meter)
        scratch_map = scratch.map()
        buffers: list[Any] = []
        try:
            specs = {entry.name: _spec(entry, _buffer(entry, source_map, scratch, scratch_map),
                                       buffers) for entry in entries}
            serialize_file(specs, path, metadata=metadata)
        except SafetensorError as exc:
            raise ConversionError(f"safetensors could not write {dest}: {exc}") from None
        finally:
            buffers.clear()
            del scratch_map
    meter.add(sum(entry.nbytes for entry in entries if entry.name not in scratch.places))


def _buffer(entry: Entry, source_map: Any, scratch: _Scratch, scratch_map: Any) -> Any:
    """A uint8 array holding the entry's output bytes, without copying them."""
    import numpy as np

    if entry.tensor.numel == 0:
        return np.zeros(1, np.uint8)  # a valid address for zero bytes
    if entry.name in scratch.places:
        offset, length = scratch.places[entry.name]
        return np.frombuffer(scratch_map, np.uint8, count=length, offset=offset)
    return file_view(source_map, entry)


def _spec(entry: Entry, buffer: Any, keep: list[Any]) -> Any:
    from safetensors import TensorSpec

    keep.append(buffer)  # serialize_file reads the address; the array must outlive the call
    return TensorSpec(dtype=entry.dtype.name, shape=list(entry.tensor.shape),
                      data_ptr=buffer.ctypes.data, data_len=entry.nbytes)


class _Scratch:
    """Materialized tensors, one after another in an unnamed file (O_TMPFILE where possible)."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.file: Any = None
        self.size = 0
        self.places: dict[str, tuple[int, int]] = {}
        self._map: Any = None

    def __enter__(self) -> _Scratch:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._map is not None:
            import contextlib

            with contextlib.suppress(BufferError):
                self._map.close()
        if self.file is not None:
            self.file.close()

    def add(self, name: str, blocks: Any, meter: Meter) -> None:
        if self.file is None:
            self.file = tempfile.TemporaryFile(dir=self.folder)  # noqa: SIM115 (closed in __exit__)
        start = self.size
        for block in blocks:
            self.file.write(block)
            self.size += block.size
            meter.add(block.size)
        self.places[name] = (start, self.size - start)

    def map(self) -> Any:
        if not self.size:
            return None
        import mmap

        self.file.flush()
        self._map = mmap.mmap(self.file.fileno(), 0, access=mmap.ACCESS_READ)
        return self._map
