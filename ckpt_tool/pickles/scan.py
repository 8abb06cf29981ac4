"""Walk a pickle's opcodes without building anything: where it stops, which globals it names, by
which opcode and at which offset, and whether it stays within the limits.

One table of opcodes, as CPython's ``pickletools.opcodes`` describes them, drives the walk.
Torch pickles (protocol 2) take a fast path that only measures arguments; a pickle that names a
global from the stack (``STACK_GLOBAL``, protocol 4) is walked again with a small symbolic stack
of constant strings, so names built on the stack or fetched from the memo are still resolved.
"""

from __future__ import annotations

import _compat_pickle
import codecs
import struct
from array import array

from ckpt_tool.containers.source import Source
from ckpt_tool.limits import DEFAULT_LIMITS, Limits
from ckpt_tool.model.record import Record
from ckpt_tool.pickles.safety import TORCH_WEIGHTS_ONLY_OPCODES

# Argument kinds for the fast walk: a value >= 0 is a fixed argument length.
_LEN1, _LEN4, _LEN8, _LINE, _PUT_LINE, _LONG_BINPUT = -2, -3, -4, -5, -6, -7
_MARK, _POP_MARK, _INST, _GLOBAL, _STACK_GLOBAL = -8, -9, -10, -11, -12
_EXT1, _EXT2, _EXT4, _PROTO, _STOP, _INVALID = -13, -14, -15, -16, -17, -100
_MEMO_OP = -18  # BINPUT, BINGET, LONG_BINGET when a walk notes where memo opcodes are

# Every opcode of CPython's pickle: (code, argument kind), as ``pickletools.opcodes`` describes
# them (a test derives this table from it again). Kept as a literal: building it from
# pickletools at import cost each start-up more than linting a small file.
OPCODE_TABLE: dict[str, tuple[int, int]] = {
    "MARK": (0x28, _MARK),
    "EMPTY_TUPLE": (0x29, 0),
    "STOP": (0x2e, _STOP),
    "POP": (0x30, 0),
    "POP_MARK": (0x31, _POP_MARK),
    "DUP": (0x32, 0),
    "BINBYTES": (0x42, _LEN4),
    "SHORT_BINBYTES": (0x43, _LEN1),
    "FLOAT": (0x46, _LINE),
    "BINFLOAT": (0x47, 8),
    "INT": (0x49, _LINE),
    "BININT": (0x4a, 4),
    "BININT1": (0x4b, 1),
    "LONG": (0x4c, _LINE),
    "BININT2": (0x4d, 2),
    "NONE": (0x4e, 0),
    "PERSID": (0x50, _LINE),
    "BINPERSID": (0x51, 0),
    "REDUCE": (0x52, 0),
    "STRING": (0x53, _LINE),
    "BINSTRING": (0x54, _LEN4),
    "SHORT_BINSTRING": (0x55, _LEN1),
    "UNICODE": (0x56, _LINE),
    "BINUNICODE": (0x58, _LEN4),
    "EMPTY_LIST": (0x5d, 0),
    "APPEND": (0x61, 0),
    "BUILD": (0x62, 0),
    "GLOBAL": (0x63, _GLOBAL),
    "DICT": (0x64, _POP_MARK),
    "APPENDS": (0x65, _POP_MARK),
    "GET": (0x67, _LINE),
    "BINGET": (0x68, 1),
    "INST": (0x69, _INST),
    "LONG_BINGET": (0x6a, 4),
    "LIST": (0x6c, _POP_MARK),
    "OBJ": (0x6f, _POP_MARK),
    "PUT": (0x70, _PUT_LINE),
    "BINPUT": (0x71, 1),
    "LONG_BINPUT": (0x72, _LONG_BINPUT),
    "SETITEM": (0x73, 0),
    "TUPLE": (0x74, _POP_MARK),
    "SETITEMS": (0x75, _POP_MARK),
    "EMPTY_DICT": (0x7d, 0),
    "PROTO": (0x80, _PROTO),
    "NEWOBJ": (0x81, 0),
    "EXT1": (0x82, _EXT1),
    "EXT2": (0x83, _EXT2),
    "EXT4": (0x84, _EXT4),
    "TUPLE1": (0x85, 0),
    "TUPLE2": (0x86, 0),
    "TUPLE3": (0x87, 0),
    "NEWTRUE": (0x88, 0),
    "NEWFALSE": (0x89, 0),
    "LONG1": (0x8a, _LEN1),
    "LONG4": (0x8b, _LEN4),
    "SHORT_BINUNICODE": (0x8c, _LEN1),
    "BINUNICODE8": (0x8d, _LEN8),
    "BINBYTES8": (0x8e, _LEN8),
    "EMPTY_SET": (0x8f, 0),
    "ADDITEMS": (0x90, _POP_MARK),
    "FROZENSET": (0x91, _POP_MARK),
    "NEWOBJ_EX": (0x92, 0),
    "STACK_GLOBAL": (0x93, _STACK_GLOBAL),
    "MEMOIZE": (0x94, 0),
    "FRAME": (0x95, 8),
    "BYTEARRAY8": (0x96, _LEN8),
    "NEXT_BUFFER": (0x97, 0),
    "READONLY_BUFFER": (0x98, 0),
}
_NAME = {code: name for name, (code, _) in OPCODE_TABLE.items()}
_KINDS = [_INVALID] * 256
for _code, _kind in OPCODE_TABLE.values():
    _KINDS[_code] = _kind
del _code, _kind
# Fixed-size opcodes torch's weights-only unpickler implements need no bookkeeping at all.
_QUIET_STEP = bytes(
    kind + 1 if kind >= 0 and _NAME[code] in TORCH_WEIGHTS_ONLY_OPCODES else 0
    for code, kind in enumerate(_KINDS)
)
"""Per opcode, the bytes to skip (opcode and argument), for the fixed-size opcodes torch's
weights-only unpickler implements, which need no bookkeeping at all; 0 for every other."""
MEMO_OPCODES = {0x68: 2, 0x6a: 5, 0x71: 2}
"""BINGET, LONG_BINGET, BINPUT and their sizes (LONG_BINPUT has its own branch)."""
_KINDS_NOTING_MEMO = [_MEMO_OP if code in MEMO_OPCODES else kind
                      for code, kind in enumerate(_KINDS)]
_QUIET_STEP_NOTING_MEMO = bytes(0 if code in MEMO_OPCODES else step
                                for code, step in enumerate(_QUIET_STEP))
MAX_EMBEDDED = 1024
"""String arguments kept per pickle as possible payloads (each is a copy of its bytes)."""
_BINUNICODE = ord("X")
_FRAME = 0x95
_LONG_BINPUT_OP = 0x72
_SIGNED_LENGTH = frozenset(ord(c) for c in ("T", "\x8b"))  # BINSTRING, LONG4
_U32 = struct.Struct("<I").unpack_from


class GlobalUse(Record):
    __slots__ = ("module", "name", "offset", "opcode")
    module: str
    name: str
    offset: int
    opcode: str

    def __init__(self, module: str, name: str, offset: int, opcode: str) -> None:
        self.module = module
        self.name = name
        self.offset = offset
        self.opcode = opcode

    @property
    def full_name(self) -> str:
        return f"{self.module}.{self.name}"


class Unresolved(Record):
    """A place where the pickle imports something the scanner cannot name statically."""

    __slots__ = ("offset", "opcode", "reason")
    offset: int
    opcode: str
    reason: str

    def __init__(self, offset: int, opcode: str, reason: str) -> None:
        self.offset = offset
        self.opcode = opcode
        self.reason = reason


class Embedded(Record):
    """A string or bytes argument that starts like a pickle or a zip archive: a pickle hidden in a
    data record (``torch.storage._load_from_bytes`` takes such a payload, and so could code that
    loads the checkpoint). Only collected when ``scan_pickle(..., find_embedded=True)``."""

    __slots__ = ("offset", "opcode", "payload")
    offset: int
    """Offset of the opcode that pushes the argument."""
    opcode: str
    payload: bytes
    """The argument's bytes (text arguments as latin-1, the way protocol 2 pickles bytes)."""

    def __init__(self, offset: int, opcode: str, payload: bytes) -> None:
        self.offset = offset
        self.opcode = opcode
        self.payload = payload


class PickleScan(Record):
    __slots__ = ("start", "end", "protocol", "opcode_count", "opcodes", "globals", "unresolved",
                 "error", "embedded", "stack_globals", "frames")
    __hash__ = None  # type: ignore[assignment]  # mutable
    start: int
    end: int
    """Offset just past STOP (or where the walk stopped on an error)."""
    protocol: int
    opcode_count: int
    opcodes: set[str]
    """Opcodes seen. The fast walk leaves out the fixed-size ones torch's weights-only
    unpickler implements (they decide nothing); every opcode it lacks is always listed."""
    globals: list[GlobalUse]
    unresolved: list[Unresolved]
    error: str | None
    """Why the walk stopped early: a corrupt pickle or a limit; None when it reached STOP."""
    embedded: list[Embedded]
    stack_globals: list[int]
    """Offsets of the STACK_GLOBALs whose names are not resolved (yet)."""
    frames: list[int]
    """Offsets of the FRAME opcodes (protocol 4 and later group opcodes in frames)."""

    def __init__(self, start: int, end: int = 0, protocol: int = 0, opcode_count: int = 0,
                 opcodes: set[str] | None = None, globals: list[GlobalUse] | None = None,
                 unresolved: list[Unresolved] | None = None, error: str | None = None,
                 embedded: list[Embedded] | None = None, stack_globals: list[int] | None = None,
                 frames: list[int] | None = None) -> None:
        self.start = start
        self.end = end
        self.protocol = protocol
        self.opcode_count = opcode_count
        self.opcodes = set() if opcodes is None else opcodes
        self.globals = [] if globals is None else globals
        self.unresolved = [] if unresolved is None else unresolved
        self.error = error
        self.embedded = [] if embedded is None else embedded
        self.stack_globals = [] if stack_globals is None else stack_globals
        self.frames = [] if frames is None else frames


def map_python2_name(module: str, name: str, protocol: int) -> tuple[str, str]:
    """CPython's unpickler renames Python 2 globals (``__builtin__``) for protocols below 3."""
    if protocol >= 3:
        return module, name
    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[(module, name)]
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


class _Stop(Exception):
    pass


def scan_pickle(
    data: bytes | memoryview, start: int = 0, limits: Limits = DEFAULT_LIMITS,
    *, find_embedded: bool = False, resolve_names: bool = True, memo_ops: array | None = None,
) -> PickleScan:
    """Walk one pickle starting at ``start``; never raises on bad input (see ``error``).

    ``find_embedded`` also collects string and bytes arguments that look like a pickle or a zip
    archive (``PickleScan.embedded``), for ``ckpt lint`` to scan in turn. STACK_GLOBAL takes its
    names from the stack, where a pickle can build them any way it likes: ``resolve_names`` has
    the restricted unpickler (which imports and calls nothing) build the pickle and record what
    ``find_class`` is asked for; ``False`` leaves them to whoever unpickles the data (the
    reader's ``find_class`` sees them exactly). ``memo_ops``, when given, receives the offset
    of every BINPUT, LONG_BINPUT, BINGET and LONG_BINGET (see ``pickles.memo``).
    """
    view = data if isinstance(data, bytes) else bytes(data)
    result = _scan_fast(view, start, limits, find_embedded, memo_ops)
    if resolve_names and result.stack_globals:
        from ckpt_tool.pickles.unpickler import resolve_stack_globals

        resolve_stack_globals(view, result)
    return result


def _read_line(data: bytes, pos: int) -> tuple[bytes, int]:
    newline = data.find(b"\n", pos)
    if newline < 0:
        raise _Stop("a line argument has no end of line")
    return data[pos:newline], newline + 1


def _global_names(data: bytes, pos: int, protocol: int) -> tuple[str, str, int]:
    module, pos = _read_line(data, pos)
    name, pos = _read_line(data, pos)
    try:
        mod_text, name_text = module.decode("utf-8"), name.decode("utf-8")
    except UnicodeDecodeError:
        raise _Stop("a global's name is not UTF-8") from None
    mod_text, name_text = map_python2_name(mod_text, name_text, protocol)
    return mod_text, name_text, pos


def _length_argument(data: bytes, pos: int, kind: int, signed: bool = False) -> int:
    """Return the position after a length-prefixed argument starting at ``pos``."""
    width = {_LEN1: 1, _LEN4: 4, _LEN8: 8}[kind]
    if pos + width > len(data):
        raise _Stop("truncated length")
    length = int.from_bytes(data[pos : pos + width], "little", signed=signed)
    if length < 0:
        raise _Stop("negative length")
    return pos + width + length


def _scan_fast(
    data: bytes, start: int, limits: Limits, find_embedded: bool = False,
    memo_ops: array | None = None,
) -> PickleScan:
    """Measure-only walk: arguments skipped, STACK_GLOBALs only located.

    The hot loop only advances past fixed-size opcodes torch's weights-only unpickler knows;
    everything else takes a slower branch that also records the opcode.
    """
    result = PickleScan(start=start)
    kinds, quiet_step = _KINDS, _QUIET_STEP
    if memo_ops is not None:
        kinds, quiet_step = _KINDS_NOTING_MEMO, _QUIET_STEP_NOTING_MEMO
    embedded = result.embedded if find_embedded else None
    binunicode = -1 if find_embedded else _BINUNICODE  # lint looks inside every string
    embed_first = _EMBED_FIRST
    size = len(data)
    seen = bytearray(256)
    u32 = _U32
    pos, depth, count = start, 0, 0
    max_depth, max_memo, max_count = limits.max_depth, limits.max_memo_index, limits.max_opcodes
    memo_high = min(max_memo >> 16, 256)  # an index whose top two bytes are 0, third below it
    try:
        # The opcode limit is the loop's own bound (a range costs less than a count and a test
        # per opcode), so it holds on every opcode: a run of quiet ones is no DoS.
        for count in range(1, max_count + 1):  # noqa: B007  # the count is read after the loop
            op = data[pos]
            step = quiet_step[op]
            if step:
                pos += step
                continue
            if op == _LONG_BINPUT_OP:  # a quarter of a big torch pickle's opcodes
                # the index is below the limit when its high bytes are (no unpacking)
                if data[pos + 4] or data[pos + 3] >= memo_high:
                    index = u32(data, pos + 1)[0]
                    if index > max_memo:
                        raise _Stop(f"memo index {index} above {max_memo} (limit "
                                    "max_memo_index)")
                if memo_ops is not None:
                    memo_ops.append(pos)
                seen[op] = 1
                pos += 5
                continue
            kind = kinds[op]
            seen[op] = 1
            if kind == _LEN1:  # short strings and bytes (protocol 3 and 4 pickles use many)
                after = pos + 2 + data[pos + 1]
                if (embedded is not None and after - pos > 4 and data[pos + 2] in embed_first
                        and after <= size and _ARGUMENT_TYPE[op]):
                    _note_argument(data, pos, after, _LEN1, embedded)
                pos = after
            elif op == binunicode:
                pos += 5 + u32(data, pos + 1)[0]
            elif op == _BINUNICODE:  # lint: the same, looking inside the string
                after = pos + 5 + u32(data, pos + 1)[0]
                if after - pos > 7 and data[pos + 5] in embed_first and after <= size:
                    _note_argument(data, pos, after, _LEN4, embedded)  # type: ignore[arg-type]
                pos = after
            elif kind == _MARK:
                depth += 1
                if depth > max_depth:
                    raise _Stop(f"MARKs nested deeper than {max_depth} (limit max_depth)")
                pos += 1
            elif kind == _POP_MARK:
                depth -= 1
                if depth < 0:
                    raise _Stop(f"{_NAME[op]} at offset {pos} has no MARK")
                pos += 1
            elif kind == _MEMO_OP:
                memo_ops.append(pos)  # type: ignore[union-attr]
                pos += MEMO_OPCODES[op]
            elif kind >= 0:
                if op == _FRAME:
                    result.frames.append(pos)
                pos += kind + 1
            elif kind == _STOP:
                pos += 1
                break
            elif kind == _STACK_GLOBAL:
                result.stack_globals.append(pos)
                pos += 1
            else:
                pos, depth = _scan_rare(data, pos, op, kind, depth, result, limits, embedded)
        else:
            count = max_count + 1  # the opcode past the limit, the one refused
            raise _Stop(f"more than {max_count} opcodes (limit max_opcodes)")
    except _Stop as stop:
        result.error = str(stop)
    except (IndexError, struct.error):
        result.error = "the pickle ends before STOP (truncated?)"
    if pos > size and result.error is None:
        result.error = "an argument runs past the end of the pickle (truncated?)"
    result.end = min(pos, size)
    result.opcode_count = count
    for code in MEMO_OPCODES:  # noted only when asked for: the same set either way
        seen[code] = 0
    result.opcodes = _seen_names(seen)
    return result


def _seen_names(seen: bytearray) -> set[str]:
    """The names of the opcodes flagged in ``seen``: found by ``find``, as a walk sees only a
    few kinds (a DCP folder's hundreds of tiny pickles made a test of all 256 a tenth of it)."""
    names, code = set(), seen.find(1)
    while code >= 0:
        name = _NAME.get(code)
        if name is not None:
            names.add(name)
        code = seen.find(1, code + 1)
    return names


def _scan_rare(
    data: bytes, pos: int, op: int, kind: int, depth: int, result: PickleScan, limits: Limits,
    embedded: list[Embedded] | None,
) -> tuple[int, int]:
    """The opcodes torch pickles seldom use; returns the new position and MARK depth."""
    if kind in (_LEN1, _LEN4, _LEN8):
        after = _length_argument(data, pos + 1, kind, signed=op in _SIGNED_LENGTH)
        if embedded is not None and _ARGUMENT_TYPE[op] and after <= len(data):
            _note_argument(data, pos, after, kind, embedded)
        return after, depth
    if kind in (_GLOBAL, _INST):
        module, name, after = _global_names(data, pos + 1, result.protocol)
        result.globals.append(GlobalUse(module, name, pos, _NAME[op]))
        if kind == _INST:
            depth -= 1
            if depth < 0:
                raise _Stop(f"INST at offset {pos} has no MARK")
        return after, depth
    if kind == _PROTO:
        result.protocol = data[pos + 1]
        return pos + 2, depth
    if kind in (_LINE, _PUT_LINE):
        line, after = _read_line(data, pos + 1)
        if kind == _PUT_LINE:
            _check_text_memo_index(line, limits.max_memo_index)
        elif embedded is not None and _ARGUMENT_TYPE[op]:
            _note_line_argument(line, pos, _NAME[op], embedded)
        return after, depth
    if kind in (_EXT1, _EXT2, _EXT4):
        return _record_extension(data, pos, kind, result), depth
    raise _Stop(f"invalid opcode 0x{op:02x} at offset {pos}")


# Opcodes whose argument is a string: 1 for bytes, 2 for UTF-8 text (protocol 2 pickles ``bytes``
# as ``_codecs.encode(text, "latin1")``), 3 for a repr-quoted STRING, 4 for raw-unicode-escape.
_ARGUMENT_TYPE = bytes(
    {"BINSTRING": 1, "SHORT_BINSTRING": 1, "BINBYTES": 1, "SHORT_BINBYTES": 1, "BINBYTES8": 1,
     "BYTEARRAY8": 1, "BINUNICODE": 2, "SHORT_BINUNICODE": 2, "BINUNICODE8": 2, "STRING": 3,
     "UNICODE": 4}.get(_NAME.get(code, ""), 0)
    for code in range(256)
)
_EMBED_FIRST = frozenset(b"\x80\xc2Pc(i")
"""First bytes of an argument worth a closer look (PROTO, PROTO as UTF-8, a zip, protocol 0)."""
_PROTOCOL_0_FIRST = frozenset(b"c(i")


def looks_embedded(payload: bytes) -> bool:
    """Does this string start like a pickle (any protocol) or a zip archive?"""
    if payload[:1] == b"\x80":
        return len(payload) > 2 and payload[1] <= 5
    if payload[:4] == b"PK\x03\x04":
        return True
    # Protocol 0/1 pickles have no PROTO: a GLOBAL, INST or MARK first, with a line argument.
    return payload[:1] in (b"c", b"(", b"i") and b"\n" in payload[1:256]


def _note_argument(
    data: bytes, pos: int, after: int, kind: int, embedded: list[Embedded]
) -> None:
    """Record the argument of the length-prefixed opcode at ``pos`` if it looks embedded."""
    start = pos + 1 + {_LEN1: 1, _LEN4: 4, _LEN8: 8}[kind]
    if after - start < 3 or data[start] not in _EMBED_FIRST:
        return
    if data[start] in _PROTOCOL_0_FIRST and data.find(b"\n", start, min(after, start + 256)) < 0:
        return  # the common case: a key such as "conv1.weight"
    payload = data[start:after]
    if _ARGUMENT_TYPE[data[pos]] == 2:
        try:
            payload = payload.decode("utf-8").encode("latin-1")
        except (UnicodeDecodeError, UnicodeEncodeError):
            return
    if looks_embedded(payload) and len(embedded) < MAX_EMBEDDED:
        embedded.append(Embedded(pos, _NAME[data[pos]], payload))


def _note_line_argument(line: bytes, pos: int, name: str, embedded: list[Embedded]) -> None:
    """STRING and UNICODE (protocol 0) carry their text escaped on one line."""
    payload = _decode_line_argument(line, name)
    if payload is not None and looks_embedded(payload) and len(embedded) < MAX_EMBEDDED:
        embedded.append(Embedded(pos, name, payload))


def _decode_line_argument(line: bytes, name: str) -> bytes | None:
    try:
        if name == "STRING":
            if len(line) < 2 or line[:1] != line[-1:] or line[:1] not in (b"'", b'"'):
                return None
            return codecs.escape_decode(line[1:-1])[0]
        return line.decode("raw-unicode-escape").encode("latin-1")
    except (ValueError, UnicodeError):
        return None


def _check_text_memo_index(line: bytes, max_memo: int) -> None:
    try:
        index = int(line)
    except ValueError:
        raise _Stop("PUT takes a decimal memo index") from None
    if index > max_memo or index < 0:
        raise _Stop(f"memo index {index} out of range (limit max_memo_index)")


def _record_extension(data: bytes, pos: int, kind: int, result: PickleScan) -> int:
    width = {_EXT1: 1, _EXT2: 2, _EXT4: 4}[kind]
    code = int.from_bytes(data[pos + 1 : pos + 1 + width], "little")
    name = _NAME[data[pos]]
    reason = f"extension code {code}: the global comes from the loader's copyreg registry"
    result.unresolved.append(Unresolved(pos, name, reason))
    return pos + 1 + width


_FIRST_READ = 1 << 16
_TRUNCATION_HINTS = ("ends before STOP", "truncated", "no end of line", "runs past the end",
                     "remain", "not enough data", "no newline")


def read_pickle_at(
    source: Source, start: int, end: int, limits: Limits, find_embedded: bool = True
) -> tuple[PickleScan, bytes]:
    """Walk the pickle at ``start`` reading only as far as it goes (never past ``end``): the first
    read is small and grows while the walk stops for want of bytes."""
    size = min(_FIRST_READ, end - start)
    while True:
        data = source.read_at(start, size)
        scan = scan_pickle(data, 0, limits, find_embedded=find_embedded)
        if scan.error is None or size >= end - start or not _cut_short(scan, data):
            return scan, data
        if size >= limits.max_pickle_bytes:
            scan.error += f" (read {size} bytes: limit max_pickle_bytes)"
            return scan, data
        size = min(end - start, size * 4, limits.max_pickle_bytes)


def _cut_short(scan: PickleScan, data: bytes) -> bool:
    assert scan.error is not None
    return scan.end >= len(data) - 8 or any(hint in scan.error for hint in _TRUNCATION_HINTS)
