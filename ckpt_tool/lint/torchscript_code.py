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

_CALL = re.compile(r"\b(?:torch|ops\.(\w+))\.(\w+)\s*\(")
_DEF = re.compile(r"^(\s*)def\s+(\w+)\s*\(")


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
    reviewed namespaces inside ``__setstate__``."""
    found: list[CodeCall] = []
    functions: list[tuple[int, str]] = []  # (indentation, name) of the enclosing defs
    for number, line in enumerate(source.splitlines(), start=1):
        stripped = line.lstrip()
        if not stripped:
            continue
        indent = len(line) - len(stripped)
        while functions and indent <= functions[-1][0]:
            functions.pop()
        definition = _DEF.match(line)
        if definition:
            functions.append((len(definition.group(1)), definition.group(2)))
            continue
        at_load = any(name == "__setstate__" for _, name in functions)
        for match in _CALL.finditer(line):
            reason = _judge(match.group(1) or "aten", match.group(2), at_load)
            if reason:
                found.append(CodeCall(member, number, stripped.strip(), at_load, reason))
    return found


def _judge(namespace: str, op: str, at_load: bool) -> str | None:
    if (namespace, op) in FILE_OPS or (namespace, op) in EXTENSION_FILE_OPS:
        return f"calls {namespace}::{op}, which reads, maps or writes a file the code names"
    if namespace in NETWORK_NAMESPACES:
        return f"calls {namespace}::{op}, a collective-communication op that reaches the network"
    if at_load and namespace not in REVIEWED_NAMESPACES:
        return f"calls {namespace}::{op}, an op outside the namespaces ckpt has reviewed"
    return None
