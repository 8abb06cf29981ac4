"""What a TorchScript archive's own code (``code/**/*.py``) would do when torch.jit.load runs it.

``torch.load`` hands a TorchScript archive to ``torch.jit.load``, which compiles the archive's
``code/`` and runs each ``__setstate__`` while it restores the objects: that code runs at load
time, the rest when the model is called. TorchScript reaches the file system and the network only
through ops, so the risk is in which ops the code calls. The op names come from torch's own
schema registry (``torch._C._jit_get_all_schemas()``: every op taking a file name, plus the
collective-communication namespaces); ``tests/test_torchscript_code.py`` re-derives the file ops
from the installed torch.
"""

from __future__ import annotations

import ast
import re
from typing import NamedTuple

FILE_OPS = frozenset({("aten", "from_file"), ("aten", "save"), ("debugprims", "load_tensor")})
"""Ops that map, read or write a file named by the code (``torch.from_file(..., shared=True)``
maps a file read-write, creating it if need be)."""
EXTENSION_FILE_OPS = frozenset({
    ("image", "read_file"), ("image", "write_file"), ("image", "write_png"),
    ("image", "write_jpeg"), ("video_reader", "read_video_from_file"),
})
"""File ops of torchvision's extension library, registered when it is imported."""
NETWORK_NAMESPACES = frozenset({"c10d", "_c10d_functional", "_c10d_functional_autograd",
                                "symm_mem", "_dtensor"})
REVIEWED_NAMESPACES = frozenset({"aten", "prim", "quantized", "_quantized", "profiler"})
"""Namespaces whose ops (the file ops above aside) compute on tensors and nothing else; a
``__setstate__`` calling into any other namespace runs code ckpt has not reviewed."""

_CALL = re.compile(r"\b(?:torch|ops\s*\.\s*(\w+))\s*\.\s*(\w+)\s*\(")
"""The fallback for code ``ast`` cannot parse (which torch.jit.load could not compile either)."""


class CodeCall(NamedTuple):
    """One call in an archive's TorchScript code that lint reports."""

    member: str
    line: int
    text: str
    at_load: bool
    """In a ``__setstate__``: torch.jit.load runs it."""
    reason: str


def risky_calls(member: str, source: str) -> list[CodeCall]:
    """The calls of file or network ops anywhere in one code file, and of ops outside the
    reviewed namespaces inside ``__setstate__``. The code is parsed as Python (TorchScript's
    serialized code is Python syntax), so spacing and line breaks inside a call change nothing."""
    lines = source.splitlines()
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return _risky_calls_in_text(member, lines)
    found: list[CodeCall] = []
    _visit(tree, member, lines, False, found)
    return found


def _visit(node: ast.AST, member: str, lines: list[str], at_load: bool,
           found: list[CodeCall]) -> None:
    stack = [(node, at_load)]
    while stack:
        current, inside = stack.pop()
        if isinstance(current, ast.FunctionDef | ast.AsyncFunctionDef):
            inside = inside or current.name == "__setstate__"
        elif isinstance(current, ast.Call):
            op = _op_of(current.func)
            reason = op and _judge(op[0], op[1], inside)
            if reason:
                line = lines[current.lineno - 1].strip() if current.lineno <= len(lines) else ""
                found.append(CodeCall(member, current.lineno, line, inside, reason))
        stack.extend((child, inside) for child in ast.iter_child_nodes(current))
    found.sort(key=lambda call: call.line)


def _op_of(func: ast.expr) -> tuple[str, str] | None:
    """(namespace, op) of ``torch.X``, ``ops.NS.X`` or ``torch.ops.NS.X``."""
    parts: list[str] = []
    while isinstance(func, ast.Attribute):
        parts.append(func.attr)
        func = func.value
    if not isinstance(func, ast.Name):
        return None
    dotted = [func.id, *reversed(parts)]
    if dotted[:2] == ["torch", "ops"]:
        dotted = dotted[1:]
    if dotted[0] == "ops" and len(dotted) == 3:
        return dotted[1], dotted[2]
    if dotted[0] == "torch" and len(dotted) == 2:
        return "aten", dotted[1]
    return None


def _risky_calls_in_text(member: str, lines: list[str]) -> list[CodeCall]:
    text = "\n".join(lines)
    found = []
    for match in _CALL.finditer(text):
        reason = _judge(match.group(1) or "aten", match.group(2), True)
        if reason:
            number = text.count("\n", 0, match.start()) + 1
            found.append(CodeCall(member, number, lines[number - 1].strip(), True, reason))
    return found


def _judge(namespace: str, op: str, at_load: bool) -> str | None:
    if (namespace, op) in FILE_OPS or (namespace, op) in EXTENSION_FILE_OPS:
        return f"calls {namespace}::{op}, which reads, maps or writes a file the code names"
    if namespace in NETWORK_NAMESPACES:
        return f"calls {namespace}::{op}, a collective-communication op that reaches the network"
    if at_load and namespace not in REVIEWED_NAMESPACES:
        return f"calls {namespace}::{op}, an op outside the namespaces ckpt has reviewed"
    return None
