"""Write outputs so that an error, Ctrl-C or a kill leaves no partial destination.

Each output is written to a temporary file in the destination's folder, flushed, fsynced, given
the mode the umask asks for, and only then moved to its name; the folder is fsynced after.

Outputs use Linux's ``O_TMPFILE``: the file has no name until ``linkat`` gives it one, so even
SIGKILL leaves nothing behind. Where the filesystem cannot, a named temporary ``.ckpt-tmp-*``
beside the destination is used and removed on any error or Ctrl-C.

Without ``--force`` an existing destination is refused, and the final step is ``link``, which
fails rather than replace a file that appeared meanwhile.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
from typing import BinaryIO

from ckpt_tool.errors import ConversionError

TEMP_PREFIX = ".ckpt-tmp-"


def check_destination(dest: str, sources: list[str], force: bool) -> None:
    """Refuse a destination that is a source, a folder, or exists without ``--force``."""
    for source in sources:
        if _same_file(dest, source):
            raise ConversionError(f"the destination {dest} is the source; choose another name "
                                  "with -o")
    if os.path.isdir(dest):
        raise ConversionError(f"the destination {dest} is a folder")
    check_folder(dest)
    if os.path.lexists(dest) and not force:
        raise ConversionError(f"{dest} exists; pass --force to replace it")


def check_folder(dest: str) -> None:
    """Refuse a destination whose folder does not exist: checked before the source is read (a
    200,000-tensor file takes seconds to read), and again before writing."""
    folder = os.path.dirname(dest) or "."
    if not os.path.isdir(folder):
        raise ConversionError(f"the destination's folder {folder} does not exist")


def check_free_space(dest: str, needed: int) -> None:
    """Refuse before writing when the destination's filesystem has less room than the output
    (and scratch) needs: a disk filled halfway through helps nobody."""
    folder = os.path.dirname(dest) or "."
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return  # the folder's own check reports a missing folder
    if needed > free:
        from ckpt_tool.render.units import human_bytes

        raise ConversionError(f"not enough free space for {dest}: it needs about "
                              f"{human_bytes(needed)} and its filesystem has {human_bytes(free)} "
                              "free")


_TEMPORARY = re.compile(r"(?:/proc/self/fd/\d+|\S*" + re.escape(TEMP_PREFIX) + r"[^\s:'\"]*)")


def is_temporary(path: str) -> bool:
    """A path of ckpt's own temporary files (a ``.ckpt-tmp-*`` name or folder, an unnamed file's
    ``/proc/self/fd/N``)."""
    return TEMP_PREFIX in path or path.startswith("/proc/self/fd/")


def name_destination(message: str, dest: str) -> str:
    """``message`` with every temporary path replaced by the destination it stands for."""
    return _TEMPORARY.sub(lambda _: dest, message)


def _same_file(a: str, b: str) -> bool:
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def output_mode() -> int:
    """The mode ``open(..., "w")`` would give a new file: 0o666 less the umask."""
    return 0o666 & ~current_umask()


def current_umask() -> int:
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # no /proc: read it the racy way, single-threaded here
    os.umask(mask)
    return mask


class _Pending:
    """``file``: an open temporary file (O_TMPFILE or named); ``temp_path``: its name, when it
    has one."""

    __slots__ = ("dest", "file", "temp_path")

    def __init__(self, dest: str) -> None:
        self.dest = dest
        self.file: BinaryIO | None = None
        self.temp_path: str | None = None


class Staging:
    """The temporary files of one conversion; ``commit`` moves them all into place, in order."""

    def __init__(self, folder: str, force: bool = False, sources: tuple[str, ...] = ()) -> None:
        self.folder = folder or "."
        self.force = force
        self.sources = list(sources)
        self._pending: list[_Pending] = []
        self._placed: list[str] = []

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, *exc: object) -> None:
        self.abort()

    def open_for(self, dest: str) -> BinaryIO:
        """A new empty file, read-write, that will become ``dest`` at commit."""
        check_destination(dest, self.sources, self.force)
        pending = _Pending(dest)
        self._pending.append(pending)
        pending.file, pending.temp_path = _open_temporary(self.folder, os.path.basename(dest))
        return pending.file

    def readable_path(self, file: BinaryIO) -> str:
        """A path that opens a staged file (``/proc/self/fd/N`` for one with no name)."""
        for pending in self._pending:
            if pending.file is file:
                return pending.temp_path or f"/proc/self/fd/{file.fileno()}"
        raise ValueError("not a staged file")

    def commit(self) -> list[str]:
        mode = output_mode()
        for pending in self._pending:
            _seal(pending, mode)
        try:
            for pending in self._pending:
                self._place(pending)
        except BaseException:
            if not self.force:  # files this commit created; a replaced file cannot come back
                for placed in self._placed:
                    with contextlib.suppress(OSError):
                        os.unlink(placed)
            raise
        _fsync_folder(self.folder)
        placed, self._placed = self._placed, []
        self.abort()
        return placed

    def _place(self, pending: _Pending) -> None:
        check_destination(pending.dest, self.sources, self.force)
        if pending.temp_path is None:
            assert pending.file is not None
            _link_unnamed(pending.file, pending.dest, self.force, self.folder)
        else:
            _move_named(pending.temp_path, pending.dest, self.force)
            pending.temp_path = None
        self._placed.append(pending.dest)

    def abort(self) -> None:
        """Close and remove every temporary file; nothing is placed."""
        for pending in self._pending:
            if pending.file is not None:
                with contextlib.suppress(OSError):
                    pending.file.close()
            if pending.temp_path is not None:
                with contextlib.suppress(OSError):
                    os.unlink(pending.temp_path)
        self._pending = []


def _open_temporary(folder: str, name: str) -> tuple[BinaryIO, str | None]:
    """An unnamed file (O_TMPFILE) where it can be linked into place, else a named temporary."""
    if _unnamed_files_work(folder):
        fd = os.open(folder, os.O_TMPFILE | os.O_RDWR, 0o600)
        return os.fdopen(fd, "w+b"), None
    import tempfile

    fd, path = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{name}.", dir=folder)
    return os.fdopen(fd, "w+b"), path


_UNNAMED_WORKS: dict[int, bool] = {}


def _unnamed_files_work(folder: str) -> bool:
    """Whether this folder's filesystem takes O_TMPFILE and ``linkat`` of one (tried once)."""
    if not hasattr(os, "O_TMPFILE") or os.environ.get("CKPT_NO_O_TMPFILE"):
        return False
    device = os.stat(folder).st_dev
    if device not in _UNNAMED_WORKS:
        _UNNAMED_WORKS[device] = _try_unnamed_file(folder)
    return _UNNAMED_WORKS[device]


def _try_unnamed_file(folder: str) -> bool:
    probe = os.path.join(folder, f"{TEMP_PREFIX}probe-{os.getpid()}-{os.urandom(4).hex()}")
    try:
        fd = os.open(folder, os.O_TMPFILE | os.O_RDWR, 0o600)
    except OSError:
        return False
    try:
        _link_fd(fd, probe)
        return True
    except OSError:
        return False
    finally:  # whatever stopped us (Ctrl-C, a worker's SIGTERM) between the link and here
        with contextlib.suppress(FileNotFoundError):
            os.unlink(probe)
        os.close(fd)


def _link_fd(fd: int, dest: str) -> None:
    """``linkat(AT_FDCWD, "/proc/self/fd/N", AT_FDCWD, dest, AT_SYMLINK_FOLLOW)``.

    ``os.link`` cannot: on Linux, CPython calls ``link()`` whatever ``follow_symlinks`` says, and
    ``link()`` does not follow the /proc magic link (it fails with EXDEV).
    """
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    result = libc.linkat(_AT_FDCWD, f"/proc/self/fd/{fd}".encode(), _AT_FDCWD,
                         os.fsencode(dest), _AT_SYMLINK_FOLLOW)
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), dest)


_AT_FDCWD = -100
_AT_SYMLINK_FOLLOW = 0x400


def _seal(pending: _Pending, mode: int) -> None:
    """Flush and fsync the data, then give it the mode a new file gets."""
    if pending.file is not None:
        pending.file.flush()
        os.fsync(pending.file.fileno())
        os.fchmod(pending.file.fileno(), mode)
        return
    assert pending.temp_path is not None
    fd = os.open(pending.temp_path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.fchmod(fd, mode)
    finally:
        os.close(fd)


def _link_unnamed(file: BinaryIO, dest: str, force: bool, folder: str) -> None:
    if not force:
        try:
            _link_fd(file.fileno(), dest)
        except FileExistsError:
            raise ConversionError(f"{dest} appeared while converting; pass --force to replace "
                                  "it") from None
        return
    temp = os.path.join(folder, f"{TEMP_PREFIX}{os.getpid()}-{os.urandom(4).hex()}")
    _link_fd(file.fileno(), temp)
    try:
        os.replace(temp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


def _move_named(temp: str, dest: str, force: bool) -> None:
    if force:
        os.replace(temp, dest)
        return
    try:
        _link_or_refuse(temp, dest)
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV):
            raise
        if os.path.lexists(dest):  # a filesystem without hard links: check, then rename
            raise ConversionError(f"{dest} exists; pass --force to replace it") from None
        os.rename(temp, dest)
        return
    os.unlink(temp)


def _link_or_refuse(source: str, dest: str) -> None:
    try:
        os.link(source, dest)
    except FileExistsError:
        raise ConversionError(f"{dest} appeared while converting; pass --force to replace "
                              "it") from None


def _fsync_folder(folder: str) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
