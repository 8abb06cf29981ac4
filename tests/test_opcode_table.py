"""The scan's opcode table is a literal (start-up); it must say what ``pickletools`` says."""

from __future__ import annotations

import pickletools

from ckpt_tool.pickles import scan


def _kind_from_pickletools(op: pickletools.OpcodeInfo) -> int:
    specials = {
        "MARK": scan._MARK, "INST": scan._INST, "GLOBAL": scan._GLOBAL,
        "STACK_GLOBAL": scan._STACK_GLOBAL, "EXT1": scan._EXT1, "EXT2": scan._EXT2,
        "EXT4": scan._EXT4, "PROTO": scan._PROTO, "STOP": scan._STOP, "PUT": scan._PUT_LINE,
        "LONG_BINPUT": scan._LONG_BINPUT,
    }
    by_length = {
        pickletools.UP_TO_NEWLINE: scan._LINE,
        pickletools.TAKEN_FROM_ARGUMENT1: scan._LEN1,
        pickletools.TAKEN_FROM_ARGUMENT4: scan._LEN4,
        pickletools.TAKEN_FROM_ARGUMENT4U: scan._LEN4,
        pickletools.TAKEN_FROM_ARGUMENT8U: scan._LEN8,
    }
    if op.name in specials:
        return specials[op.name]
    if pickletools.markobject in op.stack_before:
        return scan._POP_MARK
    if op.arg is None:
        return 0
    return op.arg.n if op.arg.n >= 0 else by_length[op.arg.n]


def test_the_table_is_what_pickletools_describes() -> None:
    derived = {op.name: (ord(op.code), _kind_from_pickletools(op)) for op in pickletools.opcodes}
    assert derived == scan.OPCODE_TABLE


def test_every_other_byte_is_an_invalid_opcode() -> None:
    codes = {code for code, _ in scan.OPCODE_TABLE.values()}
    assert all((scan._KINDS[byte] == scan._INVALID) == (byte not in codes) for byte in range(256))
