"""Read a zip archive's central directory and member bytes, the way torch's miniz reader does.

``zipfile`` builds a ZipInfo object per member and costs 0.25 s on a 50,000-member archive; this
reads the directory in one piece and unpacks it with one ``struct`` call per entry.
"""

from __future__ import annotations

import io
import struct
import zlib
from array import array
from collections.abc import Iterator, Sequence
from typing import NamedTuple, overload

from ckpt_tool.containers.source import Source
from ckpt_tool.errors import FormatError, LimitExceeded
from ckpt_tool.limits import Limits
from ckpt_tool.model.checkpoint import Anomaly, Member

_EOCD = struct.Struct("<IHHHHIIH")
_EOCD_SIG = b"PK\x05\x06"
_ZIP64_LOCATOR = struct.Struct("<IIQI")
_ZIP64_EOCD = struct.Struct("<IQHHIIQQQQ")
_CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")
_CENTRAL_SIG = 0x02014B50
_LOCAL = struct.Struct("<IHHHHHIIIHH")
_LOCAL_SIG = 0x04034B50
_MAX_COMMENT = 0xFFFF
STORED, DEFLATED = 0, 8


class Directory(Sequence[Member]):
    """A central directory's members, one array per field: a ``Member`` tuple and its integers
    for each would cost three times the memory (60 MB on an archive of 200,000 storages).
    Indexing and iterating give ``Member`` records, made as they are asked for."""

    __slots__ = ("compressed_sizes", "crc32s", "flags", "header_offsets", "methods", "names",
                 "sizes", "walked", "cd_offset")

    def __init__(self) -> None:
        self.cd_offset = 0
        """Where the directory was read from."""
        self.walked = 0
        """Bytes of the directory its entries took (miniz walks the entry count, not the size)."""
        self.names: list[str] = []
        self.header_offsets = array("Q")
        self.compressed_sizes = array("Q")
        self.sizes = array("Q")
        self.methods = array("H")
        self.crc32s = array("L")
        self.flags = array("H")

    def __len__(self) -> int:
        return len(self.names)

    @overload
    def __getitem__(self, index: int) -> Member: ...

    @overload
    def __getitem__(self, index: slice) -> list[Member]: ...

    def __getitem__(self, index: int | slice) -> Member | list[Member]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        # tuple.__new__ is what Member's generated __new__ calls, without its Python frame
        return tuple.__new__(Member, (  # type: ignore[type-var]
            self.names[index], self.header_offsets[index], self.compressed_sizes[index],
            self.sizes[index], self.methods[index], self.crc32s[index], self.flags[index]))

    def __iter__(self) -> Iterator[Member]:
        return map(Member, self.names, self.header_offsets, self.compressed_sizes, self.sizes,
                   self.methods, self.crc32s, self.flags)


def read_central_directory(
    source: Source, limits: Limits, anomalies: list[Anomaly] | None = None
) -> Directory:
    """The members as miniz (torch's zip reader) lists them. Where another zip reader would see a
    different directory (a zip64 end record that disagrees with the classic one), an ``ambiguous``
    anomaly is appended to ``anomalies``."""
    end = find_end_record(source)
    if anomalies is not None:
        anomalies.extend(end.disagreements)
    return _read_entries(source, limits, end)


def classic_directory(source: Source, limits: Limits) -> Directory | None:
    """The members the classic end record lists, when a zip64 end record (which torch reads)
    says otherwise: what zip readers that ignore zip64 records see. None when they agree."""
    end = find_end_record(source)
    if end.classic is None:
        return None
    count, cd_size, cd_offset = end.classic
    return _read_entries(source, limits, end._replace(count=count, cd_size=cd_size,
                                                      cd_offset=cd_offset))


def _read_entries(source: Source, limits: Limits, end: EndRecord) -> Directory:
    if end.count > limits.max_members:
        raise LimitExceeded(
            f"the archive has {end.count} members (limit max_members={limits.max_members})")
    if end.count and end.cd_size < end.count * _CENTRAL.size:
        raise FormatError("the zip central directory is smaller than its entry count says")
    if end.cd_offset + end.cd_size > source.size:
        raise FormatError("the zip central directory lies past the end of the file (corrupt zip)")
    directory = source.read_at(end.cd_offset, end.cd_size)
    members = Directory()
    names, header_offsets, compressed_sizes, sizes = (
        members.names, members.header_offsets, members.compressed_sizes, members.sizes)
    methods, crc32s, all_flags = members.methods, members.crc32s, members.flags
    pos, length, fixed, file_size = 0, len(directory), _CENTRAL.size, source.size
    unpack = _CENTRAL.unpack_from
    for _ in range(end.count):
        if pos + fixed > length:
            raise FormatError("the zip central directory is truncated")
        (sig, _made, _need, flags, method, _time, _date, crc, csize, usize, nlen, elen, clen,
         disk, _iattr, _eattr, offset) = unpack(directory, pos)
        start = pos + fixed
        pos = start + nlen + elen + clen
        if sig != _CENTRAL_SIG or pos > length:
            raise FormatError(f"corrupt zip central directory at entry {len(names)}")
        name = directory[start : start + nlen].decode("utf-8", "surrogateescape")
        if elen and _U32_MAX in (csize, usize, offset):
            usize, csize, offset = _zip64_sizes(directory[start + nlen : start + nlen + elen],
                                                usize, csize, offset)
        # miniz's own checks, in one test for the usual entry: a stored member's sizes agree,
        # it lies inside the file, it is on this disk, the directory is not encrypted
        if not (method == STORED and usize == csize and disk == end.disk
                and offset + _LOCAL.size + csize <= file_size and not flags & _LOCAL_DIR_MASKED):
            _check_entry(name, method, csize, usize, offset, flags, disk, end, file_size)
        # An encrypted member is refused when read (miniz, so torch, minds it only then).
        names.append(name)
        header_offsets.append(offset)
        compressed_sizes.append(csize)
        sizes.append(usize)
        methods.append(method)
        crc32s.append(crc)
        all_flags.append(flags)
    members.walked, members.cd_offset = pos, end.cd_offset
    return members


_U32_MAX = 0xFFFFFFFF
_LOCAL_DIR_MASKED = 0x2000


class EndRecord(NamedTuple):
    """Where the central directory is, as miniz finds it."""

    offset: int
    """Offset of the classic end-of-central-directory record."""
    count: int
    cd_size: int
    cd_offset: int
    disk: int
    zip64: bool
    disagreements: list[Anomaly]
    classic: tuple[int, int, int] | None = None
    """The classic record's (count, size, offset) where it disagrees with the zip64 one."""


def find_end_record(source: Source) -> EndRecord:
    """miniz's ``mz_zip_reader_read_central_dir``: the last end record signature within about
    64 KiB of the end, then, if a zip64 locator sits right before it and points at a zip64 end
    record, that record's values, whatever the classic record says."""
    eocd_offset = _locate_end_signature(source)
    (_sig, disk, cd_disk, on_disk, count, cd_size, cd_offset, _clen) = _EOCD.unpack(
        source.read_at(eocd_offset, _EOCD.size))
    classic = (count, cd_size, cd_offset)
    disagreements: list[Anomaly] = []
    zip64 = _zip64_record(source, eocd_offset)
    if zip64 is not None:
        disks, disk, cd_disk, on_disk, count, cd_size, cd_offset = zip64
        if disks != 1:
            raise FormatError("a multi-disk zip64 archive (torch reads single-file archives)")
        if cd_size > _U32_MAX or count > _U32_MAX:
            raise FormatError("the zip64 central directory is larger than miniz accepts")
        differing = [label for label, old, new, sentinel in zip(
            ("entry count", "directory size", "directory offset"), classic,
            (count, cd_size, cd_offset), (0xFFFF, _U32_MAX, _U32_MAX), strict=True)
            if old not in (new, sentinel)]
        if differing:
            disagreements.append(Anomaly(
                "ambiguous", f"the zip64 end record and the classic one disagree on the "
                f"{', '.join(differing)}: torch (miniz) reads the zip64 directory, readers that "
                "trust the classic record read another one"))
    if count != on_disk:
        raise FormatError("a multi-disk zip archive (torch reads single-file archives)")
    if (disk | cd_disk) != 0 and (disk != 1 or cd_disk != 1):
        raise FormatError("a multi-disk zip archive (torch reads single-file archives)")
    return EndRecord(eocd_offset, count, cd_size, cd_offset, disk, zip64 is not None,
                     disagreements, classic if disagreements else None)


def zipfile_directory(source: Source, limits: Limits,
                      members: Directory | None) -> Directory | None:
    """The members Python's zipfile lists (numpy.load reads an .npz with it), when it may read
    another directory than miniz's ``members``: zipfile takes the directory that ends where the
    end records begin (and shifts every member's offset by the distance to where the end record
    says it is, as for an archive after a prefix), the zip64 end record just before its locator
    (not the one the locator points at), and every entry the directory's size holds (not the
    entry count). None when it reads miniz's directory, or refuses the archive. ``members``
    None: miniz refused the archive."""
    found = _zipfile_location(source)
    if found is None:
        return None  # zipfile finds no end record
    records_at, cd_size, cd_offset = found
    if members is not None and records_at - cd_size == cd_offset == members.cd_offset and (
            cd_size == members.walked):
        return None
    if cd_size > limits.max_members * _CENTRAL.size:
        raise LimitExceeded(f"Python's zipfile would read a directory of {cd_size} bytes, room "
                            f"for more than {limits.max_members} members (limit max_members)")
    import zipfile

    try:
        with zipfile.ZipFile(_SourceFile(source)) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, struct.error):
        return None
    listed = Directory()
    for info in infos:
        if info.header_offset < 0:
            continue  # shifted before the file's start: zipfile cannot open it
        listed.names.append(info.filename)
        listed.header_offsets.append(info.header_offset)
        listed.compressed_sizes.append(info.compress_size)
        listed.sizes.append(info.file_size)
        listed.methods.append(info.compress_type)
        listed.crc32s.append(info.CRC)
        listed.flags.append(info.flag_bits)
    return listed


def _zipfile_location(source: Source) -> tuple[int, int, int] | None:
    """(where the end records begin, directory size, directory offset) as Python's zipfile's
    ``_EndRecData`` finds them: an end record without comment at the very end, else the last
    signature in the last 64 KiB (refused without a whole record after it)."""
    if source.size < _EOCD.size:
        return None
    records_at = source.size - _EOCD.size
    record = source.read_at(records_at, _EOCD.size)  # read already, as miniz's search's start
    if not (record.startswith(_EOCD_SIG) and record.endswith(b"\0\0")):
        tail_at = max(0, source.size - _MAX_COMMENT - _EOCD.size)
        tail = source.read_at(tail_at, source.size - tail_at)
        at = tail.rfind(_EOCD_SIG)
        if at < 0 or at > len(tail) - _EOCD.size:
            return None
        records_at, record = tail_at + at, tail[at : at + _EOCD.size]
    cd_size, cd_offset = _EOCD.unpack(record)[5:7]
    locator_at = records_at - _ZIP64_LOCATOR.size
    if locator_at >= _ZIP64_EOCD.size and _ZIP64_LOCATOR.unpack(
            source.read_at(locator_at, _ZIP64_LOCATOR.size))[0] == _ZIP64_LOCATOR_SIG:
        fields = _ZIP64_EOCD.unpack(source.read_at(locator_at - _ZIP64_EOCD.size,
                                                   _ZIP64_EOCD.size))
        if fields[0] == _ZIP64_EOCD_SIG:
            cd_size, cd_offset, records_at = fields[8], fields[9], locator_at - _ZIP64_EOCD.size
    return records_at, cd_size, cd_offset


class _SourceFile(io.RawIOBase):
    """A ``Source`` as the seekable binary file Python's zipfile reads."""

    def __init__(self, source: Source) -> None:
        super().__init__()
        self.source, self.position = source, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = 0) -> int:
        base = (0, self.position, self.source.size)[whence]
        if base + offset < 0:
            raise OSError("seek before the start of the file")
        self.position = base + offset
        return self.position

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        length = max(0, min(len(buffer), self.source.size - self.position))
        buffer[:length] = self.source.read_at(self.position, length)
        self.position += length
        return length


_SEARCH_BLOCK = 4096


def _locate_end_signature(source: Source) -> int:
    """``mz_zip_reader_locate_header_sig``: scan back from the end in 4 KiB blocks (overlapping
    by 3 bytes) for the last signature with a whole record after it; give up past ~64 KiB."""
    size = source.size
    if size < _EOCD.size:
        raise FormatError("too small to be a zip archive (truncated?)")
    offset = max(size - _SEARCH_BLOCK, 0)
    while True:
        block = source.read_at(offset, min(_SEARCH_BLOCK, size - offset))
        at = block.rfind(_EOCD_SIG, 0, max(0, size - offset - _EOCD.size) + 4)
        if at >= 0:
            return offset + at
        if offset == 0 or size - offset >= _MAX_COMMENT + _EOCD.size:
            raise FormatError("zip end-of-central-directory record not found (truncated?)")
        offset = max(offset - (_SEARCH_BLOCK - 3), 0)


def _zip64_record(source: Source, eocd_offset: int) -> tuple[int, ...] | None:
    """(disks, disk, cd_disk, entries on disk, entries, cd size, cd offset) of the zip64 end
    record miniz would use, or None when there is none."""
    locator_at = eocd_offset - _ZIP64_LOCATOR.size
    if locator_at < _ZIP64_EOCD.size:
        return None
    sig, _disk, record_offset, disks = _ZIP64_LOCATOR.unpack(
        source.read_at(locator_at, _ZIP64_LOCATOR.size))
    if sig != _ZIP64_LOCATOR_SIG:
        return None
    if record_offset > source.size - _ZIP64_EOCD.size:
        raise FormatError("the zip64 locator points past the end of the file (corrupt zip)")
    fields = _ZIP64_EOCD.unpack(source.read_at(record_offset, _ZIP64_EOCD.size))
    if fields[0] != _ZIP64_EOCD_SIG:
        return None
    record_size = fields[1]
    if record_size < _ZIP64_EOCD.size - 12:
        raise FormatError("corrupt zip64 end record")
    _sig, _size, _made, _need, disk, cd_disk, on_disk, count, cd_size, cd_offset = fields
    return disks, disk, cd_disk, on_disk, count, cd_size, cd_offset


_ZIP64_LOCATOR_SIG = 0x07064B50
_ZIP64_EOCD_SIG = 0x06064B50


def _check_entry(name: str, method: int, csize: int, usize: int, offset: int, flags: int,
                 disk: int, end: EndRecord, file_size: int) -> None:
    """The per-entry checks miniz makes while indexing the directory (it refuses the archive)."""
    if csize != _U32_MAX and usize != _U32_MAX and (
            (method == STORED and usize != csize) or (usize and not csize)):
        raise FormatError(f"member {name}: its sizes contradict its compression (corrupt zip)")
    if disk == 0xFFFF or (disk != end.disk and disk != 1):
        raise FormatError("a multi-disk zip archive (torch reads single-file archives)")
    if csize != _U32_MAX and offset + _LOCAL.size + csize > file_size:
        raise FormatError(f"member {name} runs past the end of the file (truncated?)")
    if flags & _LOCAL_DIR_MASKED:
        raise FormatError(f"member {name}: an encrypted central directory (unsupported)")


def _zip64_sizes(extra: bytes, usize: int, csize: int, offset: int) -> tuple[int, int, int]:
    """miniz's reading of the zip64 extended information field (0x0001): the 8-byte values
    follow in this order, one for each field the entry marks 0xFFFFFFFF."""
    pos = 0
    while True:
        if pos + 4 > len(extra):
            raise FormatError("a zip64 extra field is truncated (corrupt zip)")
        tag, length = struct.unpack_from("<HH", extra, pos)
        if length + 4 > len(extra) - pos:
            raise FormatError("a zip64 extra field is truncated (corrupt zip)")
        if tag == 0x0001:
            break
        pos += 4 + length
        if pos == len(extra):
            return usize, csize, offset  # no zip64 field: miniz keeps the 0xFFFFFFFF values
    pos += 4
    remaining = len(extra) - pos
    values = []
    for current in (usize, csize, offset):
        if current == _U32_MAX and remaining >= 8:
            (current,) = struct.unpack_from("<Q", extra, pos)
            pos, remaining = pos + 8, remaining - 8
        values.append(current)
    return values[0], values[1], values[2]


TORCH_ALIGNMENT = 64
"""torch.save's default ``storage_alignment``: each record's data starts at a multiple of it."""


def predicted_data_offset(member: Member, alignment: int = TORCH_ALIGNMENT) -> int:
    """Where torch's writer puts a member's data, computed from the central directory alone (as
    caffe2's ``getPadding``): after the local header, the name, a zip64 extra field where the
    size or offset needs one, and the ``FB`` padding field up to the next multiple of
    ``alignment``. Over the network this saves a request per tensor; whoever reads the bytes
    checks it against the local header (``check_data_offset``)."""
    start = member.header_offset + _LOCAL.size + len(member.name.encode("utf-8",
                                                                          "surrogateescape")) + 4
    if member.size >= _U32_MAX or member.header_offset >= _U32_MAX:
        start += 4 + (16 if member.size >= _U32_MAX else 0) + (
            8 if member.header_offset >= _U32_MAX else 0)
    return -(-start // alignment) * alignment


def check_data_offset(source: Source, member: Member, offset: int) -> None:
    """Raise unless the member's local header puts its data at ``offset``."""
    if data_offset(source, member) != offset:
        raise FormatError(f"member {member.name}: its data does not start where torch's writer "
                          "puts it (a zip written by another tool?): read the file locally")


def data_offset(source: Source, member: Member) -> int:
    """Absolute offset of a member's first data byte, from its local header."""
    mapped = getattr(source, "mapped", None)
    if mapped is None:
        return data_offsets(source, [member])[0]
    at = member.header_offset
    header = _LOCAL.unpack_from(mapped, at) if at + _LOCAL.size <= source.size else None
    source.note_read(at, _LOCAL.size)
    return _data_start(source, member, header)


def data_offsets(source: Source, members: Sequence[Member]) -> list[int]:
    """Data offsets of several members, their local headers read in one batch."""
    mapped = getattr(source, "mapped", None)
    if mapped is not None:  # a local file: unpack straight from its map, no copies
        unpack = _LOCAL.unpack_from
        headers = [unpack(mapped, m.header_offset) if m.header_offset + _LOCAL.size <= source.size
                   else None for m in members]
        for member in members:
            source.note_read(member.header_offset, _LOCAL.size)
    else:
        headers = [_LOCAL.unpack(h) for h in
                   source.read_many([(m.header_offset, _LOCAL.size) for m in members])]
    return [_data_start(source, member, header)
            for member, header in zip(members, headers, strict=True)]


def _data_start(source: Source, member: Member, header: tuple[int, ...] | None) -> int:
    if header is None:
        raise FormatError(f"member {member.name}: its local header lies past the end")
    sig, nlen, elen = header[0], header[9], header[10]
    if sig != _LOCAL_SIG:
        raise FormatError(f"member {member.name}: no local header at offset {member.header_offset}")
    start = member.header_offset + _LOCAL.size + nlen + elen
    if start + member.compressed_size > source.size:
        raise FormatError(f"member {member.name} runs past the end of the file (truncated?)")
    return start


_DATA_DESCRIPTOR = 0x0008


def local_header_disagreements(source: Source, members: Sequence[Member]) -> list[Anomaly]:
    """Members whose local header says something else than the central directory: miniz (torch)
    trusts the directory, streaming zip readers trust the local headers, and Python's zipfile
    refuses a name that differs. Either way two readers may load different data."""
    headers = source.read_many([(m.header_offset, _LOCAL.size) for m in members])
    names = source.read_many([(m.header_offset + _LOCAL.size, _LOCAL.unpack(h)[9])
                              for m, h in zip(members, headers, strict=True)])
    found: list[Anomaly] = []
    for member, header, raw_name in zip(members, headers, names, strict=True):
        (sig, _need, flags, method, _time, _date, crc, csize, usize, _nlen, _elen) = (
            _LOCAL.unpack(header))
        differing = []
        if sig != _LOCAL_SIG:
            differing.append("signature")
        if raw_name.decode("utf-8", "surrogateescape") != member.name:
            differing.append(f"name {raw_name.decode('utf-8', 'backslashreplace')!r}")
        if method != member.method:
            differing.append(f"compression method {method}")
        if not flags & _DATA_DESCRIPTOR:  # else the local sizes and CRC are zero by design
            if crc != member.crc32:
                differing.append("CRC-32")
            if csize not in (member.compressed_size, _U32_MAX) or usize not in (
                    member.size, _U32_MAX):
                differing.append("sizes")
        if differing:
            found.append(Anomaly(
                "ambiguous", f"member {member.name}: its local header differs from the central "
                f"directory ({', '.join(differing)}): zip readers that trust one or the other "
                "load different data", member.name))
    return found


BZIP2, LZMA = 12, 14
_FIRST_BLOCK = 4 << 20
"""Compressed bytes read to inflate the start of a bzip2 or LZMA member."""
ZIPFILE_METHODS = frozenset({DEFLATED, BZIP2, LZMA})
"""The compression methods Python's zipfile reads besides STORED (miniz reads deflate only)."""


def _inflate(raw: bytes, method: int, limit: int) -> bytes:
    """Up to ``limit`` bytes of a compressed member, as Python's zipfile reads it (an LZMA
    member starts with a version and the LZMA properties' size and bytes)."""
    try:
        if method == DEFLATED:
            return zlib.decompressobj(-15).decompress(raw, limit)
        if method == BZIP2:
            import bz2

            return bz2.BZ2Decompressor().decompress(raw, limit)
        import lzma

        (size,) = struct.unpack_from("<H", raw, 2)
        try:
            properties = lzma._decode_filter_properties(  # type: ignore[attr-defined]
                lzma.FILTER_LZMA1, raw[4 : 4 + size])
            return lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=[properties]).decompress(
                raw[4 + size :], limit)
        except lzma.LZMAError as exc:
            raise ValueError(exc) from None
    except (zlib.error, OSError, EOFError, ValueError, struct.error) as exc:  # bz2: OSError
        raise FormatError(f"does not inflate: {exc}") from None


def read_member_head(source: Source, member: Member, length: int) -> bytes:
    """Up to ``length`` first bytes of a member's (inflated) data, to tell what it holds; empty
    when they cannot be read (an encrypted or corrupt member)."""
    if member.encrypted:
        return b""
    try:
        start = data_offset(source, member)
        if member.method == STORED:
            return source.read_at(start, min(length, member.compressed_size))
        if member.method in ZIPFILE_METHODS:
            # bzip2 gives nothing before its first whole block (900 KB at most, before it is
            # compressed); LZMA and deflate stream
            wanted = 4 * length + 64 if member.method == DEFLATED else _FIRST_BLOCK
            raw = source.read_at(start, min(member.compressed_size, wanted))
            return _inflate(raw, member.method, length)
    except FormatError:
        pass
    return b""


def read_member(source: Source, member: Member, max_bytes: int,
                python_zipfile: bool = False) -> bytes:
    """A member's bytes, inflated with a cap. ``python_zipfile``: also the compression methods
    Python's zipfile reads (numpy.load of an .npz), not only miniz's (torch's)."""
    if member.encrypted:
        raise FormatError(f"member {member.name} is encrypted")
    if member.size > max_bytes:
        raise LimitExceeded(
            f"member {member.name} holds {member.size} bytes (limit max_pickle_bytes={max_bytes})"
        )
    raw = source.read_at(data_offset(source, member), member.compressed_size)
    if member.method == STORED:
        data = raw
    elif member.method == DEFLATED or (python_zipfile and member.method in ZIPFILE_METHODS):
        try:
            data = _inflate(raw, member.method, max_bytes + 1)
        except FormatError as exc:
            raise FormatError(f"member {member.name} {exc}") from None
        if len(data) > max_bytes:
            raise LimitExceeded(f"member {member.name} inflates past {max_bytes} bytes")
    else:
        raise FormatError(f"member {member.name} uses zip compression method {member.method}")
    if len(data) != member.size:
        raise FormatError(f"member {member.name}: {len(data)} bytes, directory says {member.size}")
    # No CRC-32 check: torch builds miniz without it (MINIZ_DISABLE_ZIP_READER_CRC32_CHECKS) and
    # loads records whose CRC is wrong or 0, as torch.save writes with compute_crc32 = False.
    return data
