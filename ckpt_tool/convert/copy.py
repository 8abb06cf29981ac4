"""A byte-identical copy under a new name, or a rename: the fix for ``*.pth`` names (CKPT001).

The copy goes through a staged temporary file (see ``atomic``) and ``byte_copy``, and is compared
with the source before it takes its name; a move is a hard link and an unlink, so it never
replaces a file that appeared meanwhile, with a staged copy when the destination is on another
filesystem.
"""

from __future__ import annotations

import errno
import os

from ckpt_tool.containers.source import FileSource
from ckpt_tool.convert.atomic import Staging, check_destination
from ckpt_tool.convert.byte_copy import RangeCopier
from ckpt_tool.convert.progress import Meter
from ckpt_tool.errors import ConversionError


def copy_file(source: str, dest: str, staging: Staging, verify: bool, meter: Meter) -> None:
    """Copy ``source`` to a staged ``dest`` through ``RangeCopier`` (the kernel copies: source
    and output offsets are the same); with ``verify``, every byte is read back and compared
    with the source while the copy goes on."""
    output = staging.open_for(dest)
    output.flush()
    with FileSource(source) as original:
        size = original.size
        meter.grow(size * (2 if verify else 1))
        with RangeCopier(output.fileno(), verify, meter.add) as copier:
            copier.copy(original, 0, size, 0)
            copier.finish()
    if os.fstat(output.fileno()).st_size != size:
        raise ConversionError("verification failed: the copy's size differs from the source's")


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
