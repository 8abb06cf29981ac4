"""numpy's ``.npy`` files (and the members of an ``.npz``): an array of objects is stored as a
pickle after the header, which ``numpy.load(allow_pickle=True)`` unpickles."""

from __future__ import annotations

import ast
import struct
from collections.abc import Callable

MAGIC = b"\x93NUMPY"
_MAX_HEADER = 1 << 16


def pickle_start(read_at: Callable[[int, int], bytes], size: int) -> int | None:
    """Where the pickle of an object array starts, or None when the file holds plain data (or
    is not a ``.npy`` numpy would read). The header is a Python literal, read with
    ``ast.literal_eval`` as numpy reads it, never evaluated."""
    head = read_at(0, min(size, 12))
    if not head.startswith(MAGIC) or len(head) < 10:
        return None
    major = head[6]
    if major == 1:
        (length,), start = struct.unpack("<H", head[8:10]), 10
    elif major in (2, 3) and len(head) >= 12:
        (length,), start = struct.unpack("<I", head[8:12]), 12
    else:
        return None
    if length > _MAX_HEADER or start + length > size:
        return None
    try:
        header = ast.literal_eval(read_at(start, length).decode("latin-1"))
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    if not isinstance(header, dict) or not _holds_objects(header.get("descr")):
        return None
    return start + length


def _holds_objects(descr: object) -> bool:
    """An object dtype, or a structured one with an object field, as numpy spells them."""
    if isinstance(descr, str):
        return descr.lstrip("<>=|").startswith("O")
    if isinstance(descr, list | tuple):
        return any(_holds_objects(part) for part in descr)
    return False
