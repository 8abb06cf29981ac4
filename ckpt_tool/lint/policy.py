"""How lint judges one global a pickle names, and so which rule reports it.

A global is safe only if it is on a list: torch's weights-only allow-list, ckpt's list of
data-only globals (``safety.KNOWN_SAFE``) or the project's ``allowed-globals``. Every other global
is reported by exactly one of CKPT002 (can run code), CKPT003 (a class from outside torch, numpy
and the standard library) or CKPT004 (a torch class that torch's weights-only loader refuses).
A dotted name (protocol 4 lets STACK_GLOBAL name ``module`` plus an attribute path ``a.b.c``) is
judged by its whole path, never by its first part.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

from ckpt_tool.model.checkpoint import Safety
from ckpt_tool.pickles.safety import Category, categorize, classify


class Verdict(str, Enum):
    WEIGHTS_ONLY = "weights-only"
    """On torch's allow-list: nothing to report."""
    SAFE = "safe"
    """Known to build only data, but torch.load(weights_only=True) still refuses it (CKPT004)."""
    ALLOWED = "allowed"
    """Listed in the project's ``allowed-globals``: nothing to report."""
    TORCH_CLASS = "torch-class"
    CUSTOM = "custom"
    CODE_EXECUTION = "code-execution"

    @property
    def weights_only_refuses(self) -> bool:
        return self not in (Verdict.WEIGHTS_ONLY, Verdict.ALLOWED)


@dataclass(frozen=True)
class AllowedGlobals:
    """The project's extra allowed globals: exact names (``pkg.mod.Class``) or every top-level
    name of one module (``pkg.mod.*``). A wildcard never covers a dotted attribute path, which
    could walk from an allowed module into anything it imports."""

    names: frozenset[str] = frozenset()
    modules: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> AllowedGlobals:
        names, modules = set(), set()
        for entry in entries:
            if entry.endswith(".*"):
                modules.add(entry[:-2])
            else:
                names.add(entry)
        return cls(frozenset(names), frozenset(modules))

    def allows(self, module: str, name: str) -> bool:
        if f"{module}.{name}" in self.names:
            return True
        return "." not in name and module in self.modules


NO_EXTRA_GLOBALS = AllowedGlobals()


_BY_CATEGORY = {
    Category.CODE_EXECUTION: Verdict.CODE_EXECUTION,
    Category.TORCH_CLASS: Verdict.TORCH_CLASS,
    Category.CUSTOM: Verdict.CUSTOM,
}


def judge(module: str, name: str, allowed: AllowedGlobals, torchscript: bool = False) -> Verdict:
    """``torchscript``: the pickle is in a TorchScript archive, where ``__torch__.*`` names are
    classes compiled from the archive's own TorchScript code, not Python imports."""
    if allowed.allows(module, name):
        return Verdict.ALLOWED
    safety = classify(f"{module}.{name}")
    if safety is Safety.WEIGHTS_ONLY:
        return Verdict.WEIGHTS_ONLY
    if safety is Safety.SAFE:
        return Verdict.SAFE
    if torchscript and (module == "__torch__" or module.startswith("__torch__.")):
        return Verdict.TORCH_CLASS
    return _BY_CATEGORY[categorize(module, name)]
