"""Walk a pickle's opcodes without building anything: where it stops, which globals it names, by
which opcode and at which offset, and whether it stays within the limits.

One table, derived from CPython's ``pickletools.opcodes``, drives the walk. Torch pickles
(protocol 2) take a fast path that only measures arguments; a pickle that names a global from the
stack (``STACK_GLOBAL``, protocol 4) is walked again with a small symbolic stack of constant
strings, so names built on the stack or fetched from the memo are still resolved.
"""

from __future__ import annotations

import _compat_pickle
import pickletools
import struct
from dataclasses import dataclass, field

from ckpt_tool.limits import DEFAULT_LIMITS, Limits
from ckpt_tool.safety import TORCH_WEIGHTS_ONLY_OPCODES

# Argument kinds for the fast walk: a value >= 0 is a fixed argument length.
_LEN1, _LEN4, _LEN8, _LINE, _PUT_LINE, _LONG_BINPUT = -2, -3, -4, -5, -6, -7
_MARK, _POP_MARK, _INST, _GLOBAL, _STACK_GLOBAL = -8, -9, -10, -11, -12
_EXT1, _EXT2, _EXT4, _PROTO, _STOP, _INVALID = -13, -14, -15, -16, -17, -100

OPCODES: dict[int, pickletools.OpcodeInfo] = {ord(op.code): op for op in pickletools.opcodes}
_NAME = {code: op.name for code, op in OPCODES.items()}


def _argument_kinds() -> list[int]:
    kinds = [_INVALID] * 256
    specials = {
        "MARK": _MARK, "INST": _INST, "GLOBAL": _GLOBAL, "STACK_GLOBAL": _STACK_GLOBAL,
        "EXT1": _EXT1, "EXT2": _EXT2, "EXT4": _EXT4, "PROTO": _PROTO, "STOP": _STOP,
        "PUT": _PUT_LINE, "LONG_BINPUT": _LONG_BINPUT,
    }
    by_length = {
        pickletools.UP_TO_NEWLINE: _LINE,
        pickletools.TAKEN_FROM_ARGUMENT1: _LEN1,
        pickletools.TAKEN_FROM_ARGUMENT4: _LEN4,
        pickletools.TAKEN_FROM_ARGUMENT4U: _LEN4,
        pickletools.TAKEN_FROM_ARGUMENT8U: _LEN8,
    }
    for code, op in OPCODES.items():
        if op.name in specials:
            kinds[code] = specials[op.name]
        elif pickletools.markobject in op.stack_before:
            kinds[code] = _POP_MARK
        elif op.arg is None:
            kinds[code] = 0
        elif op.arg.n >= 0:
            kinds[code] = op.arg.n
        else:
            kinds[code] = by_length[op.arg.n]
    return kinds


_KINDS = _argument_kinds()
# Fixed-size opcodes torch's weights-only unpickler implements need no bookkeeping at all.
_QUIET = bytes(
    1 if kind >= 0 and OPCODES[code].name in TORCH_WEIGHTS_ONLY_OPCODES else 0
    for code, kind in enumerate(_KINDS)
)
_BINUNICODE = ord("X")
_SIGNED_LENGTH = frozenset(ord(c) for c in ("T", "\x8b"))  # BINSTRING, LONG4
_U32 = struct.Struct("<I").unpack_from


@dataclass(frozen=True)
class GlobalUse:
    module: str
    name: str
    offset: int
    opcode: str

    @property
    def full_name(self) -> str:
        return f"{self.module}.{self.name}"


@dataclass(frozen=True)
class Unresolved:
    """A place where the pickle imports something the scanner cannot name statically."""

    offset: int
    opcode: str
    reason: str


@dataclass
class PickleScan:
    start: int
    end: int = 0
    """Offset just past STOP (or where the walk stopped on an error)."""
    protocol: int = 0
    opcode_count: int = 0
    opcodes: set[str] = field(default_factory=set)
    """Opcodes seen. The fast walk leaves out the fixed-size ones torch's weights-only
    unpickler implements (they decide nothing); every opcode it lacks is always listed."""
    globals: list[GlobalUse] = field(default_factory=list)
    unresolved: list[Unresolved] = field(default_factory=list)
    error: str | None = None
    """Why the walk stopped early: a corrupt pickle or a limit; None when it reached STOP."""


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
    data: bytes | memoryview, start: int = 0, limits: Limits = DEFAULT_LIMITS
) -> PickleScan:
    """Walk one pickle starting at ``start``; never raises on bad input (see ``error``)."""
    view = data if isinstance(data, bytes) else bytes(data)
    result = _scan_fast(view, start, limits)
    if result is None:
        result = _scan_symbolic(view, start, limits)
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


def _scan_fast(data: bytes, start: int, limits: Limits) -> PickleScan | None:
    """Measure-only walk; returns None when the pickle needs the symbolic walk.

    The hot loop only advances past fixed-size opcodes torch's weights-only unpickler knows;
    everything else takes a slower branch that also records the opcode.
    """
    result = PickleScan(start=start)
    kinds, quiet = _KINDS, _QUIET
    size = len(data)
    seen = bytearray(256)
    u32 = _U32
    pos, depth = start, 0
    max_depth, max_memo = limits.max_depth, limits.max_memo_index
    try:
        while True:
            op = data[pos]
            if quiet[op]:
                pos += kinds[op] + 1
                continue
            kind = kinds[op]
            seen[op] = 1
            if kind == _LEN4 and op == _BINUNICODE:
                pos += 5 + u32(data, pos + 1)[0]
            elif kind == _LONG_BINPUT:
                index = u32(data, pos + 1)[0]
                if index > max_memo:
                    raise _Stop(f"memo index {index} above {max_memo} (limit max_memo_index)")
                pos += 5
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
            elif kind >= 0:
                pos += kind + 1
            elif kind == _STOP:
                pos += 1
                break
            elif kind == _STACK_GLOBAL:
                return None
            else:
                pos, depth = _scan_rare(data, pos, op, kind, depth, result, limits)
    except _Stop as stop:
        result.error = str(stop)
    except (IndexError, struct.error):
        result.error = "the pickle ends before STOP (truncated?)"
    if pos > size and result.error is None:
        result.error = "an argument runs past the end of the pickle (truncated?)"
    result.end = min(pos, size)
    result.opcodes = {_NAME[code] for code in range(256) if seen[code] and code in _NAME}
    return result


def _scan_rare(
    data: bytes, pos: int, op: int, kind: int, depth: int, result: PickleScan, limits: Limits
) -> tuple[int, int]:
    """The opcodes torch pickles seldom use; returns the new position and MARK depth."""
    if kind in (_LEN1, _LEN4, _LEN8):
        return _length_argument(data, pos + 1, kind, signed=op in _SIGNED_LENGTH), depth
    if kind == _GLOBAL or kind == _INST:
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
    if kind == _LINE or kind == _PUT_LINE:
        line, after = _read_line(data, pos + 1)
        if kind == _PUT_LINE:
            _check_text_memo_index(line, limits.max_memo_index)
        return after, depth
    if kind in (_EXT1, _EXT2, _EXT4):
        return _record_extension(data, pos, kind, result), depth
    raise _Stop(f"invalid opcode 0x{op:02x} at offset {pos}")


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


class _Mark:
    """Stands for a MARK on the symbolic stack."""


_MARK_OBJ = _Mark()
_STRING_OPS = frozenset(
    {"BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8", "UNICODE", "STRING", "BINSTRING",
     "SHORT_BINSTRING"}
)


def _stack_effect(op: pickletools.OpcodeInfo) -> tuple[int, int]:
    before = op.stack_before
    pops = before.index(pickletools.markobject) if pickletools.markobject in before else len(before)
    return pops, len(op.stack_after)


_EFFECTS = {code: _stack_effect(op) for code, op in OPCODES.items()}


def _scan_symbolic(data: bytes, start: int, limits: Limits) -> PickleScan:
    """Walk with a stack of constant strings (other values are None) to name STACK_GLOBALs."""
    result = PickleScan(start=start)
    stack: list[object] = []
    marks: list[int] = []
    memo: dict[int, object] = {}
    pos = start
    try:
        for op, arg, offset in _genops(data, start):
            result.opcode_count += 1
            if result.opcode_count > limits.max_opcodes:
                raise _Stop(f"more than {limits.max_opcodes} opcodes (limit max_opcodes)")
            name = op.name
            result.opcodes.add(name)
            pos = offset
            if name == "PROTO":
                result.protocol = arg
            elif name == "STOP":
                pos = offset + 1
                break
            elif name == "MARK":
                marks.append(len(stack))
                if len(marks) > limits.max_depth:
                    raise _Stop(f"MARKs nested deeper than {limits.max_depth} (limit max_depth)")
                stack.append(_MARK_OBJ)
                continue
            elif name in ("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"):
                index = len(memo) if name == "MEMOIZE" else int(arg)
                if index > limits.max_memo_index or index < 0:
                    raise _Stop(f"memo index {index} out of range (limit max_memo_index)")
                memo[index] = stack[-1] if stack else None
                continue
            elif name in ("GET", "BINGET", "LONG_BINGET"):
                stack.append(memo.get(int(arg)))
                continue
            elif name in ("GLOBAL", "INST"):
                module, _, attr = arg.partition(" ")
                module, attr = map_python2_name(module, attr, result.protocol)
                result.globals.append(GlobalUse(module, attr, offset, name))
            elif name == "STACK_GLOBAL":
                attr = stack.pop() if stack else None
                module = stack.pop() if stack else None
                if isinstance(module, str) and isinstance(attr, str):
                    result.globals.append(GlobalUse(module, attr, offset, name))
                else:
                    reason = "module or name is not a constant string"
                    result.unresolved.append(Unresolved(offset, name, reason))
                stack.append(None)
                continue
            elif name in ("EXT1", "EXT2", "EXT4"):
                reason = f"extension code {arg}: the global comes from the loader's copyreg registry"
                result.unresolved.append(Unresolved(offset, name, reason))
            elif name == "DUP":
                stack.append(stack[-1] if stack else None)
                continue
            pops, pushes = _EFFECTS[ord(op.code)]
            if pickletools.markobject in op.stack_before:
                if not marks:
                    raise _Stop(f"{name} at offset {offset} has no MARK")
                del stack[marks.pop() :]
            del stack[max(0, len(stack) - pops) :]
            value = arg if name in _STRING_OPS and isinstance(arg, str) else None
            stack.extend([value] * pushes)
        else:
            raise _Stop("the pickle ends before STOP (truncated?)")
    except _Stop as stop:
        result.error = str(stop)
    except (ValueError, UnicodeDecodeError) as exc:
        result.error = f"corrupt pickle near offset {pos}: {exc}"
    result.end = pos
    return result


def _genops(data: bytes, start: int):
    """pickletools.genops over ``data[start:]`` with absolute offsets; stops at STOP."""
    import io

    stream = io.BytesIO(data)
    stream.seek(start)
    for op, arg, offset in pickletools.genops(stream):
        yield op, arg, offset
        if op.name == "STOP":
            return
