"""The one routine that moves tensor bytes unchanged: byte ranges of a source file to a place in
the output. Everything that copies bytes as they are goes through ``copy_ranges``, so a faster
copy can replace it in one place.

A local source is copied by the kernel (``copy_file_range``: no bytes pass through this process,
and a filesystem that shares blocks may share them); where that cannot work, by ``pread`` and
``pwrite`` of at most ``BLOCK`` bytes. A remote source is fetched ``BLOCK`` bytes at a time.
Memory stays at one block whatever the size.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Sequence
from typing import Any

from ckpt_tool.containers.source import FileSource
from ckpt_tool.errors import ConversionError

BLOCK = 8 << 20
_NO_KERNEL_COPY = (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EPERM,
                   errno.EBADF)

Advance = Callable[[int], None]


def copy_ranges(source: Any, ranges: Sequence[tuple[int, int]], dest: int, at: int,
                advance: Advance | None = None, check: bool = False) -> None:
    """Copy the ``(offset, length)`` ranges of ``source`` (a FileSource or a remote source), one
    after another, into the file descriptor ``dest`` from byte ``at``. With ``check``, each block
    fetched from a remote source is read back from ``dest`` and compared (the source is not
    fetched twice to verify it)."""
    for offset, length in ranges:
        done = 0
        while done < length:
            count = min(BLOCK, length - done)
            if isinstance(source, FileSource):
                copied = _copy_local(source.fileno(), offset + done, dest, at + done, count)
            else:
                copied = _copy_fetched(source, offset + done, dest, at + done, count, check)
            if copied == 0:
                raise ConversionError(f"{source.name} ended at byte {offset + done} while "
                                      "copying: it shrank?")
            done += copied
            if advance is not None:
                advance(copied * (2 if check and not isinstance(source, FileSource) else 1))
        at += length


_kernel_copy = [hasattr(os, "copy_file_range")]


def _copy_local(src: int, offset: int, dest: int, at: int, count: int) -> int:
    if _kernel_copy[0]:
        try:
            return os.copy_file_range(src, dest, count, offset, at)
        except OSError as exc:
            if exc.errno not in _NO_KERNEL_COPY:
                raise
            _kernel_copy[0] = False
    data = os.pread(src, count, offset)
    write_all(dest, data, at)
    return len(data)


def _copy_fetched(source: Any, offset: int, dest: int, at: int, count: int, check: bool) -> int:
    data = source.read_bulk(offset, count)
    write_all(dest, data, at)
    if check and os.pread(dest, len(data), at) != data:
        raise ConversionError(f"verification failed: bytes written at {at} differ from those "
                              f"fetched from {source.name}")
    return len(data)


def write_all(dest: int, data: Any, at: int) -> None:
    """``pwrite`` until every byte is written (a write may be short)."""
    view = memoryview(data).cast("B")
    while view:
        written = os.pwrite(dest, view, at)
        view, at = view[written:], at + written
