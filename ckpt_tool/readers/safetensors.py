"""safetensors: an 8-byte header length, a JSON header, then the tensors' bytes; header only."""

from __future__ import annotations

import json
import math
import struct
from collections import OrderedDict
from typing import Any

from ckpt_tool.containers.source import Source
from ckpt_tool.errors import FormatError, LimitExceeded
from ckpt_tool.limits import Limits
from ckpt_tool.model.checkpoint import Checkpoint, Format, Storage, TensorRef
from ckpt_tool.model.dtypes import BY_SAFETENSORS


def read_header(source: Source, limits: Limits) -> tuple[dict[str, Any], int]:
    """The parsed JSON header and the offset where tensor data begins."""
    (length,) = struct.unpack("<Q", source.read_at(0, 8))
    if length > limits.max_header_bytes:
        raise LimitExceeded(f"safetensors header of {length} bytes "
                            f"(limit max_header_bytes={limits.max_header_bytes})")
    try:
        header = json.loads(source.read_at(8, length))
    except (ValueError, UnicodeDecodeError) as exc:
        raise FormatError(f"the safetensors header is not valid JSON: {exc}") from None
    if not isinstance(header, dict):
        raise FormatError("the safetensors header is not a JSON object")
    return header, 8 + length


def read_safetensors(source: Source, limits: Limits) -> Checkpoint:
    header, data_start = read_header(source, limits)
    metadata = header.pop("__metadata__", None)
    if metadata is not None and not (
        isinstance(metadata, dict) and all(isinstance(v, str) for v in metadata.values())
    ):
        raise FormatError("__metadata__ must map strings to strings")
    if len(header) > limits.max_tensors:
        raise LimitExceeded(f"{len(header)} tensors (limit max_tensors={limits.max_tensors})")
    root: OrderedDict[str, TensorRef] = OrderedDict()
    checkpoint = Checkpoint(path=source.name, format=Format.SAFETENSORS, size=source.size,
                            root=root, safetensors_metadata=metadata)
    for name, info in header.items():
        tensor = _tensor(name, info, data_start, source.size)
        root[name] = tensor
        assert tensor.storage is not None
        checkpoint.storages[name] = tensor.storage
    return checkpoint


def _tensor(name: str, info: Any, data_start: int, file_size: int) -> TensorRef:
    if not isinstance(info, dict):
        raise FormatError(f"tensor {name}: header entry is not an object")
    dtype = BY_SAFETENSORS.get(info.get("dtype"))  # type: ignore[arg-type]
    if dtype is None:
        raise FormatError(f"tensor {name}: unknown dtype {info.get('dtype')!r}")
    shape, offsets = info.get("shape"), info.get("data_offsets")
    if not (isinstance(shape, list) and all(isinstance(n, int) and n >= 0 for n in shape)):
        raise FormatError(f"tensor {name}: malformed shape {shape!r}")
    if not (isinstance(offsets, list) and len(offsets) == 2
            and all(isinstance(n, int) and n >= 0 for n in offsets)):
        raise FormatError(f"tensor {name}: malformed data_offsets {offsets!r}")
    begin, end = offsets
    nbytes = math.prod(shape) * dtype.itemsize
    if end - begin != nbytes:
        raise FormatError(f"tensor {name}: {end - begin} bytes for a {dtype.name} of shape {shape}")
    if data_start + end > file_size:
        raise FormatError(f"tensor {name} runs past the end of the file (truncated?)")
    storage = Storage(name, dtype, nbytes, "cpu", data_start + begin)
    stride = tuple(math.prod(shape[i + 1:]) for i in range(len(shape)))
    return TensorRef(dtype, tuple(shape), stride, 0, storage)
