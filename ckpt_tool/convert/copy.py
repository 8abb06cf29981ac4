"""A byte-identical copy under a new name, or a rename: the fix for ``*.pth`` names (CKPT001).

The copy goes through a staged temporary file (see ``atomic``) and is compared with the source
before it takes its name; a move is a hard link and an unlink, so it never replaces a file that
appeared meanwhile, with a staged copy when the destination is on another filesystem.
"""

from __future__ import annotations

import errno
import os
from typing import BinaryIO

from ckpt_tool.convert.atomic import Staging, check_destination
from ckpt_tool.convert.mapping import first_difference
from ckpt_tool.convert.progress import Meter
from ckpt_tool.errors import ConversionError
from ckpt_tool.readers.tensor_bytes import open_map

_BLOCK = 32 << 20


def copy_file(source: str, dest: str, staging: Staging, verify: bool, meter: Meter) -> None:
    size = os.path.getsize(source)
    meter.grow(size * (2 if verify else 1))
    output = staging.open_for(dest)
    with open(source, "rb") as original:
        _copy_bytes(original, output, size, meter)
    if verify:
        output.flush()
        _compare_files(source, staging.readable_path(output), size, meter)


def _copy_bytes(original: BinaryIO, output: BinaryIO, size: int, meter: Meter) -> None:
    output.flush()
    done = 0
    while done < size:
        count = _copy_range(original.fileno(), output.fileno(), min(_BLOCK, size - done), done)
        if count == 0:
            raise ConversionError(f"the source shrank while copying (at byte {done})")
        done += count
        meter.add(count)
    output.seek(done)


def _copy_range(src: int, dst: int, count: int, offset: int) -> int:
    """``copy_file_range`` where the kernel has it (it may share blocks); else read and write."""
    try:
        return os.copy_file_range(src, dst, count, offset, offset)
    except (AttributeError, OSError) as exc:
        if isinstance(exc, OSError) and exc.errno not in (errno.EXDEV, errno.ENOSYS,
                                                          errno.EINVAL, errno.EOPNOTSUPP):
            raise
    data = os.pread(src, count, offset)
    os.pwrite(dst, data, offset)
    return len(data)


def _compare_files(source: str, copy: str, size: int, meter: Meter) -> None:
    if os.path.getsize(copy) != size:
        raise ConversionError("verification failed: the copy's size differs from the source's")
    if size == 0:
        return
    with open_map(source) as a, open_map(copy) as b:
        at = first_difference(a, 0, b, 0, size, meter.add)
    if at is not None:
        raise ConversionError(f"verification failed: the copy differs at byte {at}")


def move_file(source: str, dest: str, force: bool, verify: bool, meter: Meter) -> None:
    """Rename ``source`` to ``dest``; across filesystems, copy then remove the source."""
    check_destination(dest, [source], force)
    try:
        if force:
            os.replace(source, dest)
        else:
            _link_then_unlink(source, dest)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        folder = os.path.dirname(dest) or "."
        with Staging(folder, force, (source,)) as staging:
            copy_file(source, dest, staging, verify, meter)
            staging.commit()
        os.unlink(source)
    meter.finish()


def _link_then_unlink(source: str, dest: str) -> None:
    try:
        os.link(source, dest)
    except FileExistsError:
        raise ConversionError(f"{dest} exists; pass --force to replace it") from None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP):
            raise
        os.rename(source, dest)  # no hard links here; check_destination ran just before
        return
    os.unlink(source)
