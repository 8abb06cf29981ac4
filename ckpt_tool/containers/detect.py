"""Tell what a file holds from its first bytes, never from its name."""

from __future__ import annotations

import struct
from enum import Enum
from typing import TYPE_CHECKING

from ckpt_tool.containers.source import Source

if TYPE_CHECKING:
    from ckpt_tool.pickles.scan import PickleScan

SNIFF_BYTES = 1024
# torch's legacy stream starts with its magic number pickled: PROTO n, LONG1 of 10 bytes.
_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
_LEGACY_MAGIC = b"\x8a\x0a" + _MAGIC_NUMBER.to_bytes(10, "little")
_LEGACY_MAGIC_TEXT = b"L%dL\n" % _MAGIC_NUMBER
_TAR_BLOCK = 512
_EMPTY_ZIP = 22
"""An empty zip archive: its end record alone."""
_MAGIC_OPCODES = 64
"""Opcodes of a first pickle built to compare with the legacy magic number."""


class Kind(str, Enum):
    ZIP = "zip"
    LEGACY = "torch-legacy"
    TAR = "tar"
    SAFETENSORS = "safetensors"
    PICKLE = "pickle"
    """A plain pickle stream, not written by torch.save."""
    OTHER = "other"


def sniff(source: Source) -> tuple[Kind, str]:
    """Return the kind of content and a short description of it."""
    head = source.read_at(0, min(source.size, SNIFF_BYTES))
    if not head:
        return Kind.OTHER, "an empty file"
    if head.startswith(b"PK\x03\x04"):
        return Kind.ZIP, "a zip archive"
    if head.startswith(b"PK\x05\x06"):
        if source.size > _EMPTY_ZIP:  # numpy.load reads it as an .npz: zipfile finds the last
            return Kind.ZIP, "a zip archive after an empty one's end record"  # end record
        return Kind.OTHER, "an empty zip archive"
    if _is_tar(head):  # before the legacy stream, in torch.load's order
        return Kind.TAR, "a tar archive"
    if _is_legacy(head):
        return Kind.LEGACY, "a torch legacy (pre-1.6) stream"
    if _looks_like_safetensors(source, head):
        return Kind.SAFETENSORS, "a safetensors file"
    if head[:1] == b"\x80" and head[1:2] and head[1] <= 5:
        return Kind.PICKLE, f"a plain Python pickle (protocol {head[1]}), not a torch.save file"
    scan, data = _first_pickle(source)
    if _pickles_the_magic_number(scan, data):
        return Kind.LEGACY, "a torch legacy (pre-1.6) stream"
    if _is_headless(scan):
        return Kind.PICKLE, "a plain Python pickle without a protocol header, not a torch.save file"
    return Kind.OTHER, describe_other(head)


def _is_legacy(head: bytes) -> bool:
    """The pickled magic number: after PROTO (protocol >= 2), bare (1), or as text (0)."""
    if head[:1] == b"\x80" and head[2:3] == b"\x95":  # protocol 4+: PROTO n, FRAME size
        return head[11:23] == _LEGACY_MAGIC
    return (head[:1] == b"\x80" and head[2:14] == _LEGACY_MAGIC) or head.startswith(
        (_LEGACY_MAGIC, _LEGACY_MAGIC_TEXT))


def _is_tar(head: bytes) -> bool:
    """A first header Python's tarfile accepts (torch.load's tar loader opens files with it): its
    checksum and fields decide, not the ``ustar`` magic, which pre-POSIX (v7) tars lack."""
    block = head[:_TAR_BLOCK]
    # The checksum field is octal digits (after spaces), or base-256 after 0x80 or 0xff.
    if len(block) < _TAR_BLOCK:
        return False
    import tarfile

    try:
        tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
    except tarfile.HeaderError:
        return False
    return True


def is_headless_pickle(source: Source) -> bool:
    """A pickle need not start with PROTO (protocols 0 and 1 never do, and the unpickler takes
    any opcode first): a file of any size that walks cleanly to STOP through a few opcodes, or
    names a global on the way, is one. Text seldom parses that far by chance."""
    return _is_headless(_first_pickle(source)[0])


def _first_pickle(source: Source) -> tuple[PickleScan, bytes]:
    from ckpt_tool.limits import DEFAULT_LIMITS
    from ckpt_tool.pickles.scan import read_pickle_at

    return read_pickle_at(source, 0, source.size, DEFAULT_LIMITS, find_embedded=False)


def _pickles_the_magic_number(scan: PickleScan, data: bytes) -> bool:
    """torch's legacy loader unpickles the first pickle and compares its value with the magic
    number: any pickle of that integer (INT or LONG as text, in hex, LONG4, after other opcodes)
    starts a legacy stream it goes on to load, not only the LONG1 ``torch.save`` writes. Only a
    short pickle is built (a longer one is a plain pickle, each of whose successors is scanned)."""
    if (scan.error is not None or scan.globals or scan.unresolved or scan.stack_globals
            or scan.opcode_count > _MAGIC_OPCODES):
        return False
    from ckpt_tool.errors import CkptError
    from ckpt_tool.pickles.unpickler import unpickle

    try:
        value, _ = unpickle(data[: scan.end], protocol=scan.protocol)
    except CkptError:
        return False
    return type(value) is int and value == _MAGIC_NUMBER


def _is_headless(scan: PickleScan) -> bool:
    if scan.error is not None:  # stopped by one of ckpt's limits: a pickle it cannot judge
        return "(limit " in scan.error and scan.opcode_count >= 64
    return scan.end > 2 and (scan.opcode_count >= 4 or bool(scan.globals or scan.unresolved))


def _looks_like_safetensors(source: Source, head: bytes) -> bool:
    if len(head) < 10:
        return False
    (length,) = struct.unpack("<Q", head[:8])
    return 2 <= length <= source.size - 8 and head[8:9] == b"{"


def describe_other(head: bytes) -> str:
    import json

    text = head.lstrip()
    lowered = text[:200].lower()
    if text.startswith(b"version https://git-lfs.github.com/spec/"):
        return "a Git LFS pointer, not the file itself: run `git lfs pull` to fetch it"
    if lowered.startswith((b"<!doctype html", b"<html")) or b"<html" in lowered:
        return "an HTML page (a download that returned a web page?)"
    if head.startswith(b"\x1f\x8b"):
        return "a gzip-compressed file"
    if head.startswith(b"\x93NUMPY"):
        return "a numpy .npy array file"
    if head.startswith(b"\x89HDF"):
        return "an HDF5 file (Keras/TensorFlow?)"
    if head.startswith(b"GGUF"):
        return "a GGUF model file"
    if head.startswith(b"BZh"):
        return "a bzip2-compressed file"
    if head.startswith(b"\xfd7zXZ"):
        return "an xz-compressed file"
    if head.startswith(b"\x7fELF"):
        return "an ELF executable"
    if text.startswith((b"{", b"[")):
        try:
            json.loads(head)
            return "a JSON document"
        except ValueError:
            return "JSON-like text"
    if _is_text(head):
        return "a text file"
    return "an unrecognised binary file"


def _is_text(head: bytes) -> bool:
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return b"\x00" not in head
