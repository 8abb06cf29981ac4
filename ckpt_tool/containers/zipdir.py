"""Read a zip archive's central directory and member bytes, the way torch's miniz reader does.

``zipfile`` builds a ZipInfo object per member and costs 0.25 s on a 50,000-member archive; this
reads the directory in one piece and unpacks it with one ``struct`` call per entry.
"""

from __future__ import annotations

import struct
import zlib

from ckpt_tool.containers.source import Source
from ckpt_tool.errors import FormatError, LimitExceeded
from ckpt_tool.limits import Limits
from ckpt_tool.model.checkpoint import Member

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


def read_central_directory(source: Source, limits: Limits) -> list[Member]:
    count, cd_size, cd_offset = _find_directory(source)
    if count > limits.max_members:
        raise LimitExceeded(
            f"the archive has {count} members (limit max_members={limits.max_members})")
    directory = source.read_at(cd_offset, cd_size)
    members: list[Member] = []
    pos = 0
    unpack = _CENTRAL.unpack_from
    for _ in range(count):
        if pos + _CENTRAL.size > len(directory):
            raise FormatError("the zip central directory is truncated")
        (sig, _made, _need, flags, method, _time, _date, crc, csize, usize, nlen, elen, clen,
         _disk, _iattr, _eattr, offset) = unpack(directory, pos)
        if sig != _CENTRAL_SIG:
            raise FormatError(f"corrupt zip central directory at entry {len(members)}")
        start = pos + _CENTRAL.size
        name = directory[start : start + nlen].decode("utf-8", "surrogateescape")
        if 0xFFFFFFFF in (csize, usize, offset):
            usize, csize, offset = _zip64_sizes(directory[start + nlen : start + nlen + elen],
                                                usize, csize, offset)
        # An encrypted member is refused when read (miniz, so torch, minds it only then).
        members.append(Member(name, offset, csize, usize, method, crc, flags))
        pos = start + nlen + elen + clen
    return members


def _find_directory(source: Source) -> tuple[int, int, int]:
    tail_size = min(source.size, _EOCD.size + _MAX_COMMENT)
    tail = source.read_at(source.size - tail_size, tail_size)
    # miniz skips a signature with no room for a whole record after it (bytes after the zip).
    at = tail.rfind(_EOCD_SIG, 0, len(tail) - _EOCD.size + len(_EOCD_SIG))
    if at < 0 or at + _EOCD.size > len(tail):
        raise FormatError("zip end-of-central-directory record not found (truncated?)")
    _sig, _disk, _cd_disk, _n_disk, count, cd_size, cd_offset, _clen = _EOCD.unpack_from(tail, at)
    eocd_offset = source.size - tail_size + at
    if count == 0xFFFF or 0xFFFFFFFF in (cd_size, cd_offset):
        count, cd_size, cd_offset = _zip64_directory(source, eocd_offset)
    if cd_offset + cd_size > eocd_offset:
        raise FormatError("the zip central directory lies past its end record (corrupt zip)")
    return count, cd_size, cd_offset


def _zip64_directory(source: Source, eocd_offset: int) -> tuple[int, int, int]:
    locator_at = eocd_offset - _ZIP64_LOCATOR.size
    if locator_at < 0:
        raise FormatError("zip64 locator missing")
    sig, _disk, record_offset, _disks = _ZIP64_LOCATOR.unpack(
        source.read_at(locator_at, _ZIP64_LOCATOR.size)
    )
    if sig != 0x07064B50 or record_offset + _ZIP64_EOCD.size > locator_at:
        raise FormatError("corrupt zip64 locator")
    fields = _ZIP64_EOCD.unpack(source.read_at(record_offset, _ZIP64_EOCD.size))
    if fields[0] != 0x06064B50:
        raise FormatError("corrupt zip64 end record")
    return fields[7], fields[8], fields[9]


def _zip64_sizes(extra: bytes, usize: int, csize: int, offset: int) -> tuple[int, int, int]:
    pos = 0
    while pos + 4 <= len(extra):
        tag, length = struct.unpack_from("<HH", extra, pos)
        if tag == 0x0001:
            values = iter(struct.unpack_from(f"<{length // 8}Q", extra, pos + 4))
            try:
                usize = next(values) if usize == 0xFFFFFFFF else usize
                csize = next(values) if csize == 0xFFFFFFFF else csize
                offset = next(values) if offset == 0xFFFFFFFF else offset
            except StopIteration:
                raise FormatError("zip64 extra field too short") from None
            return usize, csize, offset
        pos += 4 + length
    raise FormatError("zip64 sizes missing from the extra field")


def data_offset(source: Source, member: Member) -> int:
    """Absolute offset of a member's first data byte, from its local header."""
    return data_offsets(source, [member])[0]


def data_offsets(source: Source, members: list[Member]) -> list[int]:
    """Data offsets of several members, their local headers read in one batch."""
    mapped = getattr(source, "mapped", None)
    if mapped is not None:  # a local file: unpack straight from its map, no copies
        unpack = _LOCAL.unpack_from
        headers = [unpack(mapped, m.header_offset) if m.header_offset + _LOCAL.size <= source.size
                   else None for m in members]
        source.note_reads([(m.header_offset, _LOCAL.size) for m in members])
    else:
        headers = [_LOCAL.unpack(h) for h in
                   source.read_many([(m.header_offset, _LOCAL.size) for m in members])]
    offsets = []
    for member, header in zip(members, headers, strict=True):
        if header is None:
            raise FormatError(f"member {member.name}: its local header lies past the end")
        sig, *_, nlen, elen = header
        if sig != _LOCAL_SIG:
            raise FormatError(
                f"member {member.name}: no local header at offset {member.header_offset}"
            )
        start = member.header_offset + _LOCAL.size + nlen + elen
        if start + member.compressed_size > source.size:
            raise FormatError(f"member {member.name} runs past the end of the file (truncated?)")
        offsets.append(start)
    return offsets


def local_name(source: Source, member: Member) -> str:
    header = source.read_at(member.header_offset, _LOCAL.size)
    nlen = _LOCAL.unpack(header)[-2]
    name = source.read_at(member.header_offset + _LOCAL.size, nlen)
    return name.decode("utf-8", "surrogateescape")


def read_member(source: Source, member: Member, max_bytes: int) -> bytes:
    """A member's bytes, inflated with a cap."""
    if member.encrypted:
        raise FormatError(f"member {member.name} is encrypted")
    if member.size > max_bytes:
        raise LimitExceeded(
            f"member {member.name} holds {member.size} bytes (limit max_pickle_bytes={max_bytes})"
        )
    raw = source.read_at(data_offset(source, member), member.compressed_size)
    if member.method == STORED:
        data = raw
    elif member.method == DEFLATED:
        inflater = zlib.decompressobj(-15)
        try:
            data = inflater.decompress(raw, max_bytes + 1)
        except zlib.error as exc:
            raise FormatError(f"member {member.name} does not inflate: {exc}") from None
        if len(data) > max_bytes:
            raise LimitExceeded(f"member {member.name} inflates past {max_bytes} bytes")
    else:
        raise FormatError(f"member {member.name} uses zip compression method {member.method}")
    if len(data) != member.size:
        raise FormatError(f"member {member.name}: {len(data)} bytes, directory says {member.size}")
    # No CRC-32 check: torch builds miniz without it (MINIZ_DISABLE_ZIP_READER_CRC32_CHECKS) and
    # loads records whose CRC is wrong or 0, as torch.save writes with compute_crc32 = False.
    return data
