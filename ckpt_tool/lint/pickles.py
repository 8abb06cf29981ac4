"""Find and walk every pickle in a file, the ones torch loads and the ones hidden beside them.

Nothing is unpickled here: each pickle is walked by ``pickle_scan`` (opcodes only) so that a
corrupt pickle still reports the globals it names before the point where it breaks, as the
unpickler would have imported them before failing. Besides the pickle torch reads, lint walks a
second pickle after STOP, every other ``*.pkl`` member of an archive (a second ``data.pkl`` under
another folder, TorchScript's ``constants.pkl``), and string or bytes arguments that hold a pickle
or a zip archive (the payload of ``torch.storage._load_from_bytes``), up to a nesting depth.

A string or bytes value is only data until something unpickles it: its payload is walked only
when the pickle around it names a global that could (a loader such as
``torch.storage._load_from_bytes`` or ``pickle.loads``, anything else that may run code) or
chooses a global at load time. A plain bytes value that merely looks like a pickle is not
reported: torch never unpickles it.
"""

from __future__ import annotations

import sys
from enum import Enum

from ckpt_tool.containers import npy, zipdir
from ckpt_tool.containers.source import SliceSource, Source
from ckpt_tool.errors import CkptError, FormatError
from ckpt_tool.limits import Limits
from ckpt_tool.model.checkpoint import Member, Safety
from ckpt_tool.model.record import Record
from ckpt_tool.pickles.safety import TORCH_REQUIREMENTS, classify
from ckpt_tool.pickles.scan import (
    Embedded,
    GlobalUse,
    PickleScan,
    read_pickle_at,
    scan_pickle,
)

MAX_NESTING = 3
"""Pickles inside pickles inside pickles: deeper payloads are not opened."""
MAX_PICKLES_PER_STREAM = 64
MAX_NESTED_PAYLOADS = 256
"""Pickles (or archives) inside string arguments opened per file, at every depth together."""
MAX_NESTED_MEMBER_BYTES = 64 << 20
"""An archive inside a pickle is not trusted to inflate further than this (a zip bomb)."""
_PICKLE_MEMBER_ENDINGS = (".pkl", ".pickle", "_pkl")
_SNIFF = 256
_ZIP_MAGIC = b"PK\x03\x04"


class Role(str, Enum):
    MAIN = "main"
    """A pickle torch.load unpickles."""
    EXTRA = "extra"
    """In the file, but not what torch.load reads (another member, after STOP)."""
    NESTED = "nested"
    """Inside a string or bytes argument of another pickle."""


class PickleSite(Record):
    """One pickle: where it is and what its walk found (offsets relative to ``member``)."""

    __slots__ = ("member", "scan", "role", "base", "note")
    member: str | None
    """Archive member, legacy stream part, or None for a plain pickle file."""
    scan: PickleScan
    role: Role
    base: int
    """Offset of the scanned buffer inside ``member``: add it to the scan's offsets."""
    note: str

    def __init__(self, member: str | None, scan: PickleScan, role: Role, base: int = 0,
                 note: str = "") -> None:
        self.member = member
        self.scan = scan
        self.role = role
        self.base = base
        self.note = note

    def where(self, offset: int) -> str:
        place = f"offset {self.base + offset} of {self.member}" if self.member else (
            f"offset {self.base + offset}")
        return f"{place} ({self.note})" if self.note else place


class Problem(Record):
    """Something that kept lint from reading part of the file (reported as CKPT006)."""

    __slots__ = ("message", "member")
    message: str
    member: str | None

    def __init__(self, message: str, member: str | None = None) -> None:
        self.message = message
        self.member = member


class BytesSource:
    """A ``Source`` over bytes in memory (an archive found inside a pickle)."""

    def __init__(self, data: bytes, name: str) -> None:
        self.data, self.name, self.size, self.bytes_read = data, name, len(data), 0

    def read_at(self, offset: int, length: int) -> bytes:
        if offset < 0 or length < 0 or offset + length > self.size:
            raise FormatError(f"needs bytes {offset}..{offset + length} of {self.size}")
        self.bytes_read += length
        return self.data[offset : offset + length]

    def read_many(self, ranges: list[tuple[int, int]]) -> list[bytes]:
        return [self.read_at(offset, length) for offset, length in ranges]

    def close(self) -> None:
        pass


def importable(use: GlobalUse) -> bool:
    """Module and name are dotted identifiers: anything else fails to import, running nothing."""
    return all(part.isidentifier() for part in (*use.module.split("."), *use.name.split(".")))


_EVERYWHERE = frozenset({*sys.stdlib_module_names, "torch", "numpy", *TORCH_REQUIREMENTS,
                         "__builtin__", "copy_reg"})
"""Top-level modules a victim's Python surely has (torch's own requirements too): what a
payload hidden in text would name."""


def names_code(scan: PickleScan) -> bool:
    """The walk names code from a module every loader has before it breaks: the unpickler
    imports and calls as it goes, so the error after it comes too late. Text whose lines read
    as a global (``class M(Module):``, ``collections`` then ``torch._utils``) names nothing of
    the kind."""
    return any(importable(use) and use.module.split(".")[0] in _EVERYWHERE
               and classify(use.module, use.name) in (Safety.CODE, Safety.NOT_REVIEWED)
               for use in scan.globals)


_LIMIT_AFTER = 64
"""Opcodes walked before a limit stopped the walk, for the data to count as a pickle: text or
binary data stops at once (an ASCII ``r`` is LONG_BINPUT of a huge memo index)."""


def stopped_by_a_limit(scan: PickleScan) -> bool:
    """One of ckpt's limits stopped a walk that had gone a long way: CPython's unpickler has no
    MARK-depth limit, so this is a pickle ckpt could not judge (CKPT006), not data."""
    return (scan.error is not None and "(limit " in scan.error
            and scan.opcode_count >= _LIMIT_AFTER)


def could_unpickle_its_strings(scan: PickleScan) -> bool:
    """The pickle names a global that may run code (every loader is one) or picks a global at
    load time: one of its string or bytes values may be unpickled in turn."""
    return bool(scan.unresolved) or any(
        classify(use.module, use.name) in (Safety.CODE, Safety.NOT_REVIEWED)
        for use in scan.globals)


_NATIVE_SUFFIXES = (".so", ".dll", ".dylib", ".pyd")
_NATIVE_MAGIC = (b"\x7fELF", b"\xcf\xfa\xed\xfe", b"\xce\xfa\xed\xfe", b"\xca\xfe\xba\xbe")
"""ELF, Mach-O 64 and 32 bits, Mach-O universal (a Windows PE is told by its DOS stub)."""


def is_native_code(name: str, head: bytes) -> bool:
    """A shared library or an executable, by its name or its first bytes."""
    base = name.lower().rsplit("/", 1)[-1]
    if base.endswith(_NATIVE_SUFFIXES) or ".so." in base or head.startswith(_NATIVE_MAGIC):
        return True
    return head.startswith(b"MZ") and b"This program cannot be run in DOS mode" in head[:256]


def is_pickle_member(name: str) -> bool:
    return name.lower().endswith(_PICKLE_MEMBER_ENDINGS)


class PickleCollector(Record):
    """Collects the pickles of one file into ``sites`` and what it could not read into
    ``problems``; nested payloads are collected quietly (their failures are not problems)."""

    __slots__ = ("limits", "sites", "problems", "depth", "inflated", "native_code", "opened")
    __hash__ = None  # type: ignore[assignment]  # mutable
    limits: Limits
    sites: list[PickleSite]
    problems: list[Problem]
    depth: int
    inflated: list[int]
    """Member bytes read so far in this file, shared with nested collectors: many compressed
    members together may not cost more than one pickle may (``max_pickle_bytes``)."""
    native_code: list[str]
    """Archive members that hold native code (shared libraries, executables)."""
    opened: list[int]
    """Nested payloads opened so far in this file, shared likewise (``MAX_NESTED_PAYLOADS``)."""

    def __init__(self, limits: Limits, sites: list[PickleSite] | None = None,
                 problems: list[Problem] | None = None, depth: int = 0,
                 inflated: list[int] | None = None, native_code: list[str] | None = None,
                 opened: list[int] | None = None) -> None:
        self.limits = limits
        self.sites = [] if sites is None else sites
        self.problems = [] if problems is None else problems
        self.depth = depth
        self.inflated = [0] if inflated is None else inflated
        self.native_code = [] if native_code is None else native_code
        self.opened = [0] if opened is None else opened

    @property
    def quiet(self) -> bool:
        return self.depth > 0

    def problem(self, message: str, member: str | None = None) -> None:
        if not self.quiet:
            self.problems.append(Problem(message, member))

    def add(self, site: PickleSite) -> None:
        self.sites.append(site)
        if could_unpickle_its_strings(site.scan):
            for embedded in site.scan.embedded:
                self._nested(site, embedded)

    def scan_buffer(self, data: bytes, member: str | None, role: Role,
                    quiet_errors: bool = False) -> None:
        """Every pickle in ``data``, one after another (a second pickle after STOP is EXTRA).
        ``quiet_errors``: the data was picked for its first bytes only, so a walk that breaks
        without naming a global is data that merely starts like a pickle."""
        pos, index = 0, 0
        while pos < len(data) and index < MAX_PICKLES_PER_STREAM:
            scan = scan_pickle(data, pos, self.limits, find_embedded=True)
            if scan.error is not None and (role is Role.NESTED or (
                    quiet_errors and not names_code(scan) and not stopped_by_a_limit(scan))):
                return  # data that merely starts like a pickle
            later = index > 0 and role is not Role.NESTED
            note = "a pickle after the first one's STOP" if later else ""
            self.add(PickleSite(member, scan, Role.EXTRA if later else role, 0, note))
            if scan.error is not None:
                if role is not Role.MAIN and not quiet_errors:  # torch reports the main one
                    self.problem(f"{member}: {scan.error}", member)
                return
            pos, index = scan.end, index + 1
        if index > 1 and role is not Role.MAIN and role is not Role.NESTED:
            self.problem(f"{member} holds more than one pickle", member)

    def scan_stream(
        self, source: Source, start: int, end: int, names: list[str | None], base: int = 0,
    ) -> list[tuple[PickleScan, bytes]]:
        """The pickles one after another from ``start``, one per entry of ``names`` (a legacy
        stream's parts, or None for the pickles of a plain pickle file). The first is MAIN, and so
        are later ones that have a name; an unnamed later one is EXTRA. Stops at the first that
        does not reach STOP; offsets are reported relative to ``base``."""
        found: list[tuple[PickleScan, bytes]] = []
        pos = start
        for index, name in enumerate(names):
            if pos >= end:
                break
            scan, data = read_pickle_at(source, pos, end, self.limits)
            main = index == 0 or name is not None
            note = "" if main else f"pickle {index + 1} in the file"
            self.add(PickleSite(name, scan, Role.MAIN if main else Role.EXTRA, pos - base, note))
            found.append((scan, data))
            if scan.error is not None:
                break
            pos += scan.end
        return found

    def scan_zip(self, source: Source, members: list[Member], main: Member | None,
                 prefix: str = "", raw_records: str | None = None) -> None:
        """Every pickle member of an archive; ``main`` is the one torch.load unpickles. Members
        are found by name (``*.pkl``) and by content (a pickle's PROTO header or a zip archive's
        signature: torch.export and torch.package name theirs freely), except the records right
        under ``raw_records``, which torch reads as raw tensor bytes (a .pt2's ``data/weights/``
        and ``data/constants/`` lie deeper, and torch.export.load unpickles some of them, however
        many other records the archive holds)."""
        for member in members:
            name = prefix + member.name
            by_name = member == main or is_pickle_member(member.name)
            if not by_name:
                if raw_records is not None and member.name.lower().startswith(
                        raw_records.lower()) and "/" not in member.name[len(raw_records):]:
                    continue  # a storage (data/<key>); deeper records are torch.export's
                self._scan_member_as_loaded(source, member, name)
                continue
            budget = self.limits.max_pickle_bytes - self.inflated[0]
            if member.size > budget:
                self.problem(f"stopped before {member.name}: the file's pickles exceed "
                             f"{self.limits.max_pickle_bytes} bytes (limit max_pickle_bytes)",
                             name)
                return
            side = self.quiet or member != main  # a member torch itself never unpickles
            cap = min(budget, MAX_NESTED_MEMBER_BYTES) if side else budget
            try:
                data = zipdir.read_member(source, member, cap, python_zipfile=True)
            except CkptError as exc:
                self.problem(f"could not scan {member.name}: {exc}", name)
                continue
            self.inflated[0] += len(data)
            role = Role.NESTED if self.quiet else Role.MAIN if member == main else Role.EXTRA
            self.scan_buffer(data, name, role, quiet_errors=not by_name)

    def scan_archive_at(self, source: Source, start: int, length: int, name: str) -> None:
        """A byte range that a loader hands to ``torch.load`` (a DCP data file's slice): a zip
        is read as an archive, anything else is unpickled from its first byte."""
        try:
            inner = SliceSource(source, start, length, name)
            head = inner.read_at(0, min(length, 4))
        except CkptError as exc:
            self.problem(f"could not read {name}: {exc}", name)
            return
        if head != _ZIP_MAGIC:
            self.scan_stream(inner, 0, length, [name, *[None] * (MAX_PICKLES_PER_STREAM - 1)])
            return
        try:
            members = zipdir.read_central_directory(inner, self.limits)
        except CkptError as exc:
            self.problem(f"could not read the archive {name}: {exc}", name)
            return
        self.scan_zip(inner, members, None, prefix=name + " > ")

    def _scan_member_as_loaded(self, source: Source, member: Member, name: str) -> None:
        """A member no name marks as a pickle: torch.export, torch.package and numpy name theirs
        freely, and may hand any member to ``torch.load`` (a zip: an archive; anything else: a
        pickle from its first byte) or ``pickle.loads``. Native code is noted. Data that merely
        starts like a pickle (tensor bytes, text) names no global and is passed over."""
        head = zipdir.read_member_head(source, member, _SNIFF)
        if not head:
            if member.size and not member.encrypted and (
                    member.method not in (zipdir.STORED, *zipdir.ZIPFILE_METHODS)):
                self.problem(f"could not scan {member.name}: zip compression method "
                             f"{member.method}, which newer zip readers may read", name)
            return
        if is_native_code(member.name, head):
            self.native_code.append(name)
        elif head.startswith(npy.MAGIC):
            self._scan_npy_member(source, member, name)
        elif head.startswith(_ZIP_MAGIC):
            self._nested_archive(source, member, name)
        elif member.method == zipdir.STORED and not member.encrypted:
            try:
                start = zipdir.data_offset(source, member)
                inner = SliceSource(source, start, member.compressed_size, name)
            except CkptError:
                return
            scan, _ = read_pickle_at(inner, 0, inner.size, self.limits)
            if names_code(scan) or stopped_by_a_limit(scan) or (
                    scan.error is None and scan.end > 2):
                self.scan_stream(inner, 0, inner.size, [name])
        else:
            budget = min(self.limits.max_pickle_bytes - self.inflated[0],
                         MAX_NESTED_MEMBER_BYTES)
            try:
                data = zipdir.read_member(source, member, budget, python_zipfile=True)
            except CkptError:
                return
            self.inflated[0] += len(data)
            self.scan_buffer(data, name, Role.NESTED if self.quiet else Role.EXTRA,
                             quiet_errors=True)

    def scan_npy(self, source: Source, name: str | None) -> None:
        """A ``.npy`` array of objects: the pickle after its header (``numpy.load`` with
        ``allow_pickle=True`` unpickles it)."""
        start = npy.pickle_start(source.read_at, source.size)
        if start is not None:
            self.scan_stream(source, start, source.size, [name], base=start)

    def _scan_npy_member(self, source: Source, member: Member, name: str) -> None:
        budget = min(self.limits.max_pickle_bytes - self.inflated[0], MAX_NESTED_MEMBER_BYTES)
        try:
            data = zipdir.read_member(source, member, budget, python_zipfile=True)
        except CkptError as exc:
            self.problem(f"could not read {member.name}: {exc}", name)
            return
        self.inflated[0] += len(data)
        self.scan_npy(BytesSource(data, name), name)

    def _nested_archive(self, source: Source, member: Member, name: str) -> None:
        """A zip archive stored as a member (torch.export keeps torch.save files so): its
        pickles are what ``torch.load`` of that member would unpickle."""
        if self.depth >= MAX_NESTING:
            return
        budget = min(self.limits.max_pickle_bytes - self.inflated[0], MAX_NESTED_MEMBER_BYTES)
        try:
            data = zipdir.read_member(source, member, budget, python_zipfile=True)
            inner = BytesSource(data, name)
            members = zipdir.read_central_directory(inner, self.limits)
        except CkptError as exc:
            self.problem(f"could not scan the archive {member.name}: {exc}", name)
            return
        self.inflated[0] += len(data)
        collector = PickleCollector(self.limits, self.sites, self.problems, self.depth + 1,
                                    self.inflated, self.native_code, self.opened)
        collector.scan_zip(inner, members, None, prefix=name + " > ")

    def _nested(self, site: PickleSite, embedded: Embedded) -> None:
        if self.depth >= MAX_NESTING:
            return
        self.opened[0] += 1
        if self.opened[0] > MAX_NESTED_PAYLOADS:
            if self.opened[0] == MAX_NESTED_PAYLOADS + 1:
                self.problems.append(Problem(
                    f"stopped opening pickles inside strings after {MAX_NESTED_PAYLOADS}: a file "
                    "that hides this many is not a checkpoint to load", site.member))
            return
        label = (f"{site.member or 'the file'} > {embedded.opcode} argument at offset "
                 f"{site.base + embedded.offset}")
        inner = PickleCollector(self.limits, self.sites, self.problems, self.depth + 1,
                                self.inflated, self.native_code, self.opened)
        if embedded.payload.startswith(b"PK\x03\x04"):
            source = BytesSource(embedded.payload, label)
            try:
                members = zipdir.read_central_directory(source, self.limits)
            except CkptError:
                return
            inner.scan_zip(source, members, None, prefix=label + " > ")
        else:
            inner.scan_buffer(embedded.payload, label, Role.NESTED)
