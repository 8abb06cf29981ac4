"""Read-only memory maps of whole files."""

from __future__ import annotations

import mmap
from collections.abc import Callable

COMPARE_BYTES = 1 << 20


def first_difference(a: mmap.mmap, a_offset: int, b: mmap.mmap, b_offset: int,
                     length: int, advance: Callable[[int], None] | None = None) -> int | None:
    """Where two mapped byte ranges first differ (compared 1 MB at a time), or None."""
    for start in range(0, length, COMPARE_BYTES):
        size = min(COMPARE_BYTES, length - start)
        x = a[a_offset + start : a_offset + start + size]
        y = b[b_offset + start : b_offset + start + size]
        if x != y:
            return start + next(i for i in range(size) if x[i] != y[i])
        if advance is not None:
            advance(size)
    return None
