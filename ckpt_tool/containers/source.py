"""Random access to a checkpoint's bytes: a local file read with pread, never all at once."""

from __future__ import annotations

import mmap
import os
import stat
from array import array
from typing import Protocol

from ckpt_tool.errors import FormatError


class Source(Protocol):
    name: str
    size: int
    bytes_read: int
    """How many bytes were read so far (reported for remote files)."""

    def read_at(self, offset: int, length: int) -> bytes: ...

    def read_many(self, ranges: list[tuple[int, int]]) -> list[bytes]:
        """Several (offset, length) reads; a remote source batches them."""
        ...

    def close(self) -> None: ...


class FileSource:
    """A local file; ``read_at`` is one ``pread`` so nothing moves a shared file position."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.name = os.fspath(path)
        # (start, stop) of every read, flat: a tuple each would cost 18 MB on 200,000 storages
        self._reads = array("q")
        # O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused just below.
        flags = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NONBLOCK", 0)
        self._fd = os.open(self.name, flags)
        info = os.fstat(self._fd)
        if not stat.S_ISREG(info.st_mode):
            os.close(self._fd)
            raise FormatError("not a regular file (a FIFO, socket or device?)")
        self.size = info.st_size
        self._map: mmap.mmap | None = None
        if self.size:
            try:  # small reads (zip headers) from a map cost no system call
                self._map = mmap.mmap(self._fd, 0, access=mmap.ACCESS_READ)
            except (OSError, ValueError):
                self._map = None  # pread it is

    def read_at(self, offset: int, length: int) -> bytes:
        if offset < 0 or length < 0 or offset + length > self.size:
            raise FormatError(
                f"needs bytes {offset}..{offset + length} but the file holds {self.size} "
                "(truncated?)"
            )
        self._reads.extend((offset, offset + length))
        if self._map is not None:
            return self._map[offset : offset + length]
        data = os.pread(self._fd, length, offset)
        if len(data) != length:
            raise FormatError(f"short read at offset {offset}: the file changed while read?")
        return data

    def read_many(self, ranges: list[tuple[int, int]]) -> list[bytes]:
        return [self.read_at(offset, length) for offset, length in ranges]

    def note_read(self, offset: int, length: int) -> None:
        """Count a read a caller made through ``mapped``."""
        self._reads.extend((offset, offset + length))

    @property
    def mapped(self) -> mmap.mmap | None:
        """The file's memory map, for callers that unpack many small headers in place."""
        return self._map

    @property
    def bytes_read(self) -> int:
        """Distinct bytes read so far (overlapping reads count once)."""
        total, end = 0, 0
        reads = self._reads
        for start, stop in sorted(zip(reads[::2], reads[1::2], strict=True)):
            if stop > end:
                total += stop - max(start, end)
                end = stop
        return total

    def fileno(self) -> int:
        return self._fd

    def close(self) -> None:
        if self._map is not None:
            self._map.close()
            self._map = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> FileSource:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class SliceSource:
    """A byte range of another source, read as a file of its own: a torch.save archive embedded
    in a DCP data file or stored as one member of a zip. Offsets are relative to the range."""

    def __init__(self, parent: Source, start: int, length: int, name: str) -> None:
        if start < 0 or length < 0 or start + length > parent.size:
            raise FormatError(f"{name}: bytes {start}..{start + length} lie past the end of "
                              f"{parent.name}, which holds {parent.size} (truncated?)")
        self.parent, self.start = parent, start
        self.name, self.size = name, length

    @property
    def remote(self) -> bool:
        return getattr(self.parent, "remote", False)

    @property
    def requests(self) -> int:
        return getattr(self.parent, "requests", 0)

    def read_at(self, offset: int, length: int) -> bytes:
        if offset < 0 or length < 0 or offset + length > self.size:
            raise FormatError(f"{self.name}: needs bytes {offset}..{offset + length} of a range "
                              f"of {self.size}")
        return self.parent.read_at(self.start + offset, length)

    def read_many(self, ranges: list[tuple[int, int]]) -> list[bytes]:
        for offset, length in ranges:
            if offset < 0 or length < 0 or offset + length > self.size:
                raise FormatError(f"{self.name}: needs bytes {offset}..{offset + length} of a "
                                  f"range of {self.size}")
        return self.parent.read_many([(self.start + offset, length) for offset, length in ranges])

    @property
    def bytes_read(self) -> int:
        return self.parent.bytes_read

    def close(self) -> None:
        """The parent stays open: its owner closes it."""
