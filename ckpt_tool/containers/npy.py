"""numpy's ``.npy`` files (and the members of an ``.npz``): an array of objects is stored as a
pickle after the header, which ``numpy.load(allow_pickle=True)`` unpickles."""

from __future__ import annotations

import ast
import re
import struct
from collections.abc import Callable

MAGIC = b"\x93NUMPY"
_MAX_HEADER = 1 << 20
"""numpy.load(allow_pickle=True) reads a header of any length; a longer one than this is not
parsed (``ast.literal_eval`` of megabytes takes memory by the hundred) and is presumed to
describe objects: what follows it is scanned as a pickle."""
_PLAIN = re.compile(r"[<>|=]?(?:[?bBhHiIlLqQpPefdgFDG]|[biufcSUVa]\d+|[mM]8(?:\[\d*[a-zA-Z]+\])?)")
"""The type strings numpy writes for dtypes without objects (``dtype.str``: ``<f4``, ``|b1``,
``<U7``, ``<M8[ns]``...)."""


def pickle_start(read_at: Callable[[int, int], bytes], size: int) -> int | None:
    """Where the pickle of an object array starts, or None when the file holds plain data (or
    is not a ``.npy`` numpy would read). The header is a Python literal, read with
    ``ast.literal_eval`` as numpy reads it (a version 1 or 2 header after numpy's repair of
    Python 2 longs), never evaluated."""
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
    if start + length > size:
        return None
    if length > _MAX_HEADER:
        return start + length
    text = read_at(start, length).decode("utf-8" if major == 3 else "latin-1", "replace")
    try:
        header = _literal(text, major)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    if not isinstance(header, dict) or not _holds_objects(header.get("descr")):
        return None
    return start + length


def _literal(text: str, major: int) -> object:
    try:
        return ast.literal_eval(text)
    except SyntaxError:
        if major > 2:
            raise
    import io
    import tokenize

    # numpy's _filter_header: a header written by Python 2 may hold longs (``(3L,)``)
    tokens, after_number = [], False
    try:
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            if not (after_number and token.type == tokenize.NAME and token.string == "L"):
                tokens.append(token)
            after_number = token.type == tokenize.NUMBER
    except tokenize.TokenError as exc:  # numpy fails on it as well
        raise SyntaxError(str(exc)) from None
    return ast.literal_eval(tokenize.untokenize(tokens))


def _holds_objects(descr: object) -> bool:
    """Whether the dtype numpy builds from ``descr`` may hold objects: numpy reads any type text
    (``O``, ``object``, ``object_``, ``T``: each one pickled), so only the plain type strings
    numpy writes are data; in a structured dtype, each field's type (not its name)."""
    if isinstance(descr, str):
        return _PLAIN.fullmatch(descr) is None
    if isinstance(descr, tuple):
        return not descr or _holds_objects(descr[0])
    if isinstance(descr, list):
        return any(not isinstance(field, tuple | list | str) or len(field) not in (2, 3)
                   or _holds_objects(field[1]) for field in descr)
    return True
