"""Write torch's zip format (``torch.save`` since 1.6) without torch.

Mirrors caffe2's ``PyTorchStreamWriter``: every record sits in one folder named after the file
(its name up to the last dot), is stored uncompressed, and its data starts on a 64-byte boundary,
reached by padding the local header's extra field (id ``FB``, 0x4246) so ``torch.load(mmap=True)``
can map the storages in place. Python's ``zipfile`` does the rest, zip64 included.
"""

from __future__ import annotations

import os
import secrets
import struct
import zipfile
from collections.abc import Iterable
from typing import BinaryIO

ALIGNMENT = 64
FORMAT_VERSION = "1"
ARCHIVE_VERSION = "3\n"
_LOCAL_HEADER = 30
_PAD_ID = 0x4246
_ZIP64_EXTRA = 20
_DATE = (1980, 1, 1, 0, 0, 0)


def archive_name(dest: str) -> str:
    name = os.path.basename(dest)
    return name.rsplit(".", 1)[0] if "." in name else name


class TorchZipWriter:
    def __init__(self, file: BinaryIO, name: str) -> None:
        self.prefix = name + "/"
        self.zip = zipfile.ZipFile(file, "w", zipfile.ZIP_STORED, allowZip64=True)

    def __enter__(self) -> TorchZipWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.zip.close()

    def write(self, record: str, data: bytes) -> None:
        self.write_blocks(record, len(data), [data])

    def write_blocks(self, record: str, size: int, blocks: Iterable[bytes | memoryview]) -> int:
        """A record of ``size`` bytes, given in pieces; returns the file offset of its data."""
        info = zipfile.ZipInfo(self.prefix + record, date_time=_DATE)
        info.compress_type = zipfile.ZIP_STORED
        info.file_size = size
        zip64 = size * 1.05 > zipfile.ZIP64_LIMIT  # zipfile's own rule for the local header
        header = _LOCAL_HEADER + len(info.filename.encode("utf-8")) + 4
        header += _ZIP64_EXTRA if zip64 else 0
        pad = -(self.zip.start_dir + header) % ALIGNMENT
        info.extra = struct.pack("<HH", _PAD_ID, pad) + b"Z" * pad
        with self.zip.open(info, "w", force_zip64=zip64) as out:
            start = self.zip.fp.tell()  # type: ignore[union-attr]  # past the local header
            for block in blocks:
                out.write(block)
        return start

    def write_trailer(self) -> None:
        """The records torch writes after the data."""
        self.write("version", ARCHIVE_VERSION.encode("ascii"))
        self.write(".data/serialization_id", f"{secrets.randbits(128):040d}".encode("ascii"))

    def write_header_records(self, byteorder: str) -> None:
        """The records torch writes right after ``data.pkl``."""
        self.write(".format_version", FORMAT_VERSION.encode("ascii"))
        self.write(".storage_alignment", str(ALIGNMENT).encode("ascii"))
        self.write("byteorder", byteorder.encode("ascii"))
