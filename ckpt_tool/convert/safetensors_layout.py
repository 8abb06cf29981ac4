"""The layout of a safetensors file, as ``safetensors.serialize_file`` lays it out.

An 8-byte little-endian header length, the JSON header (``__metadata__`` first, then one entry per
tensor in data order) padded with spaces to a multiple of 8, then every tensor's bytes back to
back. Data order is safetensors' own (``prepare`` in safetensors/src/tensor.rs): by dtype in the
reverse order of its ``Dtype`` enum, then by name; that puts the widest dtypes first, so every
tensor starts on a multiple of its item size. With at most one metadata key the file is byte for
byte what ``serialize_file`` writes (it orders several keys by a hash, so they cannot match).
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass

from ckpt_tool.convert.plan import Entry
from ckpt_tool.errors import ConversionError

DTYPE_ORDER = ("BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "F8_E8M0", "F8_E4M3FNUZ", "F8_E5M2FNUZ",
               "I16", "U16", "F16", "BF16", "I32", "U32", "F32", "C64", "F64", "I64", "U64")
"""safetensors 0.8's ``Dtype`` enum order, read from the data order ``serialize_file`` gives."""
_RANK = {code: rank for rank, code in enumerate(DTYPE_ORDER)}


@dataclass(frozen=True)
class Layout:
    header: bytes
    """Length prefix, JSON and padding: the file's first ``data_start`` bytes."""
    entries: list[Entry]
    """In data order."""
    places: dict[str, tuple[int, int]]
    """Tensor name -> (begin, end) byte offsets in the file."""
    size: int

    @property
    def data_start(self) -> int:
        return len(self.header)


def lay_out(entries: list[Entry], metadata: dict[str, str]) -> Layout:
    ordered = sorted(entries, key=lambda e: (-_RANK[_code(e)], e.name.encode("utf-8", "replace")))
    header: dict[str, object] = {"__metadata__": metadata} if metadata else {}
    offset = 0
    spans = {}
    for entry in ordered:
        spans[entry.name] = (offset, offset + entry.nbytes)
        header[entry.name] = {"dtype": _code(entry), "shape": list(entry.tensor.shape),
                              "data_offsets": [offset, offset + entry.nbytes]}
        offset += entry.nbytes
    try:
        text = json.dumps(header, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ConversionError(f"a tensor name or metadata value is not valid text: {exc}") from None
    text += b" " * (-len(text) % 8)
    prefix = struct.pack("<Q", len(text)) + text
    start = len(prefix)
    places = {name: (start + begin, start + end) for name, (begin, end) in spans.items()}
    return Layout(prefix, ordered, places, len(prefix) + offset)


def _code(entry: Entry) -> str:
    code = entry.dtype.safetensors
    if code not in _RANK:
        raise ConversionError(f"tensor {entry.name}: dtype {entry.dtype.name} has no safetensors "
                              "equivalent")
    return code
