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
from array import array
from json.encoder import encode_basestring  # type: ignore[attr-defined]

from ckpt_tool.convert.plan import Entry
from ckpt_tool.errors import ConversionError

DTYPE_ORDER = ("BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "F8_E8M0", "F8_E4M3FNUZ", "F8_E5M2FNUZ",
               "I16", "U16", "F16", "BF16", "I32", "U32", "F32", "C64", "F64", "I64", "U64")
"""safetensors 0.8's ``Dtype`` enum order, read from the data order ``serialize_file`` gives."""
_RANK = {code: rank for rank, code in enumerate(DTYPE_ORDER)}


class Layout:
    """One output file laid out: its header bytes and where each tensor goes. Kept small at
    200,000 tensors: offsets in an array, the header text built as bytes in one buffer (the
    JSON that ``json.dumps`` gives for the header dictionary, without building that
    dictionary)."""

    __slots__ = ("begins", "data_start", "entries", "header", "size")

    def __init__(self, header: bytearray, entries: list[Entry], begins: array[int], size: int
                 ) -> None:
        self.header: bytearray | None = header
        """Length prefix, JSON and padding: the file's first ``data_start`` bytes. None once
        the written file's header has been checked against it (``release_header``)."""
        self.data_start = len(header)
        self.entries = entries
        """In data order."""
        self.begins = begins
        """Each entry's first byte, from the start of the data (``data_offsets[0]``)."""
        self.size = size

    def release_header(self) -> None:
        """Let the header's bytes go: 20 MB at 200,000 tensors, the size of the read-back's
        own text of it."""
        self.header = None

    def place(self, index: int) -> tuple[int, int]:
        """(begin, end) byte offsets in the file of ``entries[index]``."""
        begin = self.data_start + self.begins[index]
        return begin, begin + self.entries[index].nbytes


def lay_out(entries: list[Entry], metadata: dict[str, str]) -> Layout:
    ordered = sorted(entries, key=_name)  # then by dtype: a stable sort keeps names in order
    ordered.sort(key=_rank)
    begins = array("q", bytes(8 * len(ordered)))
    header = bytearray(8)  # the length goes here at the end
    header += b"{"
    offset = 0
    try:
        if metadata:
            header += b'"__metadata__":'
            header += json.dumps(metadata, ensure_ascii=False, separators=(",", ":")).encode()
        offset = 0
        for index, entry in enumerate(ordered):
            begins[index] = offset
            end = offset + entry.nbytes
            shape = ",".join(map(str, entry.tensor.shape))
            item = (f'{encode_basestring(entry.name)}:{{"dtype":"{_code(entry)}",'
                    f'"shape":[{shape}],"data_offsets":[{offset},{end}]}}')
            if len(header) > 9:
                header += b","
            header += item.encode()
            offset = end
    except UnicodeEncodeError as exc:
        raise ConversionError(f"a tensor name or metadata value is not valid text: {exc}") from None
    header += b"}"
    header += b" " * (-len(header) % 8)
    struct.pack_into("<Q", header, 0, len(header) - 8)
    return Layout(header, ordered, begins, len(header) + offset)


def _name(entry: Entry) -> str:
    """Names in UTF-8 byte order, as safetensors sorts them: for text that encodes (any name
    written), code point order is the same."""
    return entry.name


def _rank(entry: Entry) -> int:
    return -_RANK[_code(entry)]


def _code(entry: Entry) -> str:
    code = entry.dtype.safetensors
    if code not in _RANK:
        raise ConversionError(f"tensor {entry.name}: dtype {entry.dtype.name} has no safetensors "
                              "equivalent")
    return code
