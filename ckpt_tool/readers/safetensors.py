"""safetensors: an 8-byte header length, a JSON header, then the tensors' bytes; header only."""

from __future__ import annotations

import json
import math
import re
import struct
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

from ckpt_tool.containers.source import Source
from ckpt_tool.errors import FormatError, LimitExceeded
from ckpt_tool.limits import Limits
from ckpt_tool.model.checkpoint import Checkpoint, Format, Storage, TensorRef
from ckpt_tool.model.dtypes import BY_SAFETENSORS


def read_header(source: Source, limits: Limits) -> tuple[dict[str, Any], int]:
    """The parsed JSON header and the offset where tensor data begins."""
    length = _header_length(source, limits)
    try:
        header = json.loads(source.read_at(8, length))
    except (ValueError, UnicodeDecodeError) as exc:
        raise FormatError(f"the safetensors header is not valid JSON: {exc}") from None
    if not isinstance(header, dict):
        raise FormatError("the safetensors header is not a JSON object")
    return header, 8 + length


def _header_length(source: Source, limits: Limits) -> int:
    (length,) = struct.unpack("<Q", source.read_at(0, 8))
    if length > limits.max_header_bytes:
        raise LimitExceeded(f"safetensors header of {length} bytes "
                            f"(limit max_header_bytes={limits.max_header_bytes})")
    return int(length)


def _header_text(source: Source, length: int) -> str:
    """The header as text; from a local file's map, decoded in place (at 200,000 tensors the
    header is 20 MB, and a copy of its bytes would double it)."""
    mapped = getattr(source, "mapped", None)
    if mapped is None or 8 + length > source.size:
        return source.read_at(8, length).decode("utf-8")
    source.note_read(8, length)
    with memoryview(mapped) as view, view[8 : 8 + length] as header:
        return str(header, "utf-8")


_DECODER = json.JSONDecoder()
_SPACE = re.compile(r"[ \t\n\r]*")


def header_items(source: Source, limits: Limits) -> Iterator[tuple[str, Any]]:
    """The header's (name, value) pairs in order, each value parsed as ``json.loads`` parses
    it, one at a time: a header of 200,000 tensors never becomes one dictionary of 200,000
    dictionaries. Repeated names come out each time."""
    try:
        text = _header_text(source, _header_length(source, limits))
    except UnicodeDecodeError as exc:
        raise FormatError(f"the safetensors header is not valid UTF-8: {exc}") from None
    at = _expect(text, _SPACE.match(text, 0).end(), "{")  # type: ignore[union-attr]
    if text.startswith("}", at):
        at += 1
    else:
        while True:
            if not text.startswith('"', at):
                raise FormatError(f"the safetensors header has no name at character {at}")
            try:
                name, at = _DECODER.raw_decode(text, at)
                at = _expect(text, at, ":")
                value, at = _DECODER.raw_decode(text, at)
            except ValueError as exc:
                raise FormatError(f"the safetensors header is not valid JSON: {exc}") from None
            yield name, value
            at = _SPACE.match(text, at).end()  # type: ignore[union-attr]
            if text.startswith(",", at):
                at = _SPACE.match(text, at + 1).end()  # type: ignore[union-attr]
                continue
            at = _expect(text, at, "}")
            break
    if _SPACE.match(text, at).end() != len(text):  # type: ignore[union-attr]
        raise FormatError(f"the safetensors header has data after its end at character {at}")


def _expect(text: str, at: int, char: str) -> int:
    """The position after ``char`` (and any white space) at ``at``, or a FormatError."""
    at = _SPACE.match(text, at).end()  # type: ignore[union-attr]
    if not text.startswith(char, at):
        raise FormatError(f"the safetensors header is not valid JSON: expected {char!r} at "
                          f"character {at}")
    return _SPACE.match(text, at + 1).end()  # type: ignore[union-attr]


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
