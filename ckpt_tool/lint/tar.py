"""torch's pre-0.4 tar format, walked the way ``torch.serialization._legacy_load`` reads it.

The tar holds ``storages`` (a pickled count, then per storage a pickled ``(key, location, storage
type)``, an 8-byte element count and the bytes, then a pickled list of views), ``tensors`` (a
pickled count, then per tensor a pickled ``(key, storage id, type)`` followed by ndim, sizes,
strides and offset as raw integers) and ``pickle`` (the object tree). torch refuses
``weights_only=True`` for this format, and without it each of these pickles is unpickled in full,
so lint walks every one of them. No tensor byte is read: the raw parts are skipped by their size.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from ckpt_tool.containers.source import Source
from ckpt_tool.errors import FormatError
from ckpt_tool.lint.pickles import PickleCollector
from ckpt_tool.model.objects import StorageType
from ckpt_tool.pickles.unpickler import unpickle

if TYPE_CHECKING:
    import tarfile

TORCH_MEMBERS = ("storages", "tensors", "pickle")
_MAX_NDIM = 64
_MAX_LINK_HOPS = 8


def scan_torch_tar(source: Source, members: list[tarfile.TarInfo],
                   collector: PickleCollector) -> bool:
    """Walk the pickles of torch's members; False when the tar has no ``storages`` member.

    torch.load unpickles ``storages`` before it looks for the other members, so a tar that holds
    only that one is a torch tar too; a missing ``tensors`` or ``pickle`` is a problem."""
    names = {m.name for m in members}
    if "storages" not in names:
        return False
    for missing in sorted(set(TORCH_MEMBERS) - names):
        collector.problem(f"the tar has no {missing} member: torch.load fails after unpickling "
                          "the members before it")
    for index, member in enumerate(members):
        if member.name in (*TORCH_MEMBERS, "sys_info"):
            _scan_member(source, collector, member.name, _extracted(members, index))
    return True


def _extracted(members: list[tarfile.TarInfo], index: int) -> tarfile.TarInfo | None:
    """The member whose bytes ``tar.extract`` writes for ``members[index]``: a hard link is
    extracted as the member it names (the last of that name before it, as tarfile looks it up)."""
    member, hops = members[index], 0
    while member.islnk() and hops < _MAX_LINK_HOPS:
        target = os.path.normpath(member.linkname)
        index = next((i for i in range(index - 1, -1, -1)
                      if os.path.normpath(members[i].name) == target), -1)
        if index < 0:
            return None
        member, hops = members[index], hops + 1
    return member


def _scan_member(source: Source, collector: PickleCollector, name: str,
                 content: tarfile.TarInfo | None) -> None:
    if content is None or not content.isfile():
        collector.problem(f"tar member {name} is not a regular file (nor a hard link to one)",
                          name)
        return
    start, end = content.offset_data, content.offset_data + content.size
    try:
        if name in ("pickle", "sys_info"):
            collector.scan_stream(source, start, end, [name], base=start)
        else:
            walk = _walk_storages if name == "storages" else _walk_tensors
            walk(source, start, end, collector, name)
    except FormatError as exc:
        collector.problem(f"tar member {name}: {exc}", name)


def _load(source: Source, pos: int, end: int, collector: PickleCollector, member: str,
          base: int) -> tuple[Any, int]:
    """Walk and (with the restricted unpickler) build the pickle at ``pos``; return the value and
    the position after it."""
    [(scan, data)] = collector.scan_stream(source, pos, end, [member], base=base)
    if scan.error is not None:
        raise FormatError(scan.error)
    value, _ = unpickle(data[: scan.end], None, scan.protocol)
    return value, pos + scan.end


def _count(value: Any, limit: int, what: str) -> int:
    if not isinstance(value, int) or not 0 <= value <= limit:
        raise FormatError(f"expected a count of {what}, found {value!r:.60}")
    return value


def _walk_storages(source: Source, start: int, end: int, collector: PickleCollector,
                   member: str) -> None:
    value, pos = _load(source, start, end, collector, member, start)
    for _ in range(_count(value, collector.limits.max_tensors, "storages")):
        args, pos = _load(source, pos, end, collector, member, start)
        if not (isinstance(args, tuple) and len(args) == 3 and isinstance(args[2], StorageType)):
            raise FormatError(f"expected (key, location, storage type), found {args!r:.80}")
        numel = int.from_bytes(source.read_at(pos, 8), "little", signed=True)
        pos += 8 + max(numel, 0) * args[2].dtype.itemsize
        if numel < 0 or pos > end:
            raise FormatError(f"storage {args[0]!r:.40} declares {numel} elements, past the end")
    _load(source, pos, end, collector, member, start)  # the storage views


def _walk_tensors(source: Source, start: int, end: int, collector: PickleCollector,
                  member: str) -> None:
    value, pos = _load(source, start, end, collector, member, start)
    for _ in range(_count(value, collector.limits.max_tensors, "tensors")):
        _, pos = _load(source, pos, end, collector, member, start)
        ndim = int.from_bytes(source.read_at(pos, 4), "little", signed=True)
        if not 0 <= ndim <= _MAX_NDIM:
            raise FormatError(f"a tensor with {ndim} dimensions")
        pos += 8 + 16 * ndim + 8  # ndim (8 bytes), sizes, strides, storage offset
        if pos > end:
            raise FormatError("a tensor record runs past the end of the member")
