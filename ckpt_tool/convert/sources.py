"""The files a conversion reads tensor bytes from, each opened once: a local file (read through
its memory map and file descriptor) or a URL (read by range requests, nothing kept)."""

from __future__ import annotations

import contextlib
import os
from typing import Any

from ckpt_tool.containers.remote import is_url, open_url
from ckpt_tool.containers.source import FileSource
from ckpt_tool.errors import ConversionError, FormatError


class SourceFiles:
    def __init__(self, own_file: str) -> None:
        self.own_file = own_file
        """The checkpoint's own path: the file of tensors whose storage names no other."""
        self._open: dict[str, Any] = {}

    def __enter__(self) -> SourceFiles:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(self, file: str) -> Any:
        """A :class:`FileSource` or a remote source."""
        source = self._open.get(file)
        if source is None:
            try:
                source = open_url(file) if is_url(file) else FileSource(file)
            except (OSError, FormatError) as exc:
                reason = getattr(exc, "strerror", None) or str(exc)
                raise ConversionError(f"cannot open {file}: {reason}") from None
            self._open[file] = source
        return source

    def read(self, file: str, offset: int, length: int) -> Any:
        """``length`` bytes at ``offset``: a view of the map for a local file, else fetched."""
        source = self.get(file)
        if offset < 0 or offset + length > source.size:
            raise ConversionError(f"{file}: bytes {offset}..{offset + length} lie past its end "
                                  f"({source.size} bytes): truncated?")
        if isinstance(source, FileSource):
            mapped = source.mapped
            if mapped is not None:
                return memoryview(mapped)[offset:offset + length]
            return source.read_at(offset, length)
        return source.read_bulk(offset, length)

    def copy_of(self, file: str, offset: int, length: int) -> bytes:
        """``length`` bytes at ``offset``, copied out of the page cache (``pread``: no page
        faults on a map, which cost more than the copy for large reads) or fetched."""
        source = self.get(file)
        if not isinstance(source, FileSource):
            return source.read_bulk(offset, length)
        data = os.pread(source.fileno(), length, offset)
        if len(data) != length:
            raise ConversionError(f"{file}: bytes {offset}..{offset + length} lie past its end: "
                                  "truncated?")
        return data

    def close(self) -> None:
        for source in self._open.values():
            with contextlib.suppress(BufferError):  # a view still alive keeps its map open
                source.close()
        self._open.clear()
