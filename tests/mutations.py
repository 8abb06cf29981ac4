"""Ways to break a checkpoint for fuzzing: each takes the file's bytes and a random source."""

from __future__ import annotations

import io
import pickletools
import random
import struct
import zipfile
from collections.abc import Callable

Mutation = Callable[[bytes, random.Random], bytes]
_OPCODES = [op.code.encode("latin-1") for op in pickletools.opcodes]


def flip_bits(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        if out:
            out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
    return bytes(out)


def truncate(data: bytes, rng: random.Random) -> bytes:
    return data[: rng.randrange(len(data) + 1)]


def splice_bytes(data: bytes, rng: random.Random) -> bytes:
    at = rng.randrange(len(data) + 1)
    junk = bytes(rng.randrange(256) for _ in range(rng.randint(1, 32)))
    return data[:at] + junk + data[at + rng.randint(0, 16):]


def _rewrite_pickle(data: bytes, change: Callable[[bytes], bytes]) -> bytes:
    """Apply ``change`` to data.pkl of a zip checkpoint (fixing its CRC), or to a raw pickle."""
    try:
        source = zipfile.ZipFile(io.BytesIO(data))
        members = [(info.filename, source.read(info)) for info in source.infolist()]
    except (zipfile.BadZipFile, ValueError, OSError, EOFError):
        return change(data)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as target:
        for name, payload in members:
            target.writestr(name, change(payload) if name.endswith("data.pkl") else payload)
    return out.getvalue()


def splice_opcodes(data: bytes, rng: random.Random) -> bytes:
    def change(pickle: bytes) -> bytes:
        at = rng.randrange(len(pickle) + 1)
        ops = b"".join(rng.choice(_OPCODES) + bytes(rng.randrange(256) for _ in range(
            rng.randint(0, 4))) for _ in range(rng.randint(1, 6)))
        return pickle[:at] + ops + pickle[at:]
    return _rewrite_pickle(data, change)


def drop_opcodes(data: bytes, rng: random.Random) -> bytes:
    def change(pickle: bytes) -> bytes:
        at = rng.randrange(len(pickle) + 1)
        return pickle[:at] + pickle[at + rng.randint(1, 8):]
    return _rewrite_pickle(data, change)


def corrupt_directory(data: bytes, rng: random.Random) -> bytes:
    """Overwrite a field of the end record or of a central directory entry."""
    out = bytearray(data)
    signatures = [b"PK\x05\x06", b"PK\x01\x02", b"PK\x03\x04", b"PK\x06\x06"]
    found = [i for sig in signatures for i in _find_all(data, sig)]
    if not found:
        return flip_bits(data, rng)
    at = rng.choice(found) + rng.randrange(4, 46)
    if at + 4 <= len(out):
        value = rng.choice([0, 1, 0xFFFFFFFF, 0x7FFFFFFF, rng.randrange(1 << 32)])
        out[at : at + 4] = struct.pack("<I", value)
    return bytes(out)


def _find_all(data: bytes, needle: bytes) -> list[int]:
    found, at = [], data.find(needle)
    while at >= 0:
        found.append(at)
        at = data.find(needle, at + 1)
    return found


MUTATIONS: list[Mutation] = [flip_bits, truncate, splice_bytes, splice_opcodes, drop_opcodes,
                             corrupt_directory]
