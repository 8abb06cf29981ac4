"""How lint judges one global a pickle names, and so which rule reports it.

The judgement is a lookup in ckpt's reviewed policy (``pickles.safety.rate``): torch's
weights-only allow-list, ckpt's reviewed table (``data`` and ``reviewed`` tiers, and the ``code``
table), and the project's ``allowed-globals``. Every global not listed as fine is reported by
exactly one of CKPT002 (known to run code, or a torch/numpy/standard-library global nobody
reviewed, or a dotted attribute path), CKPT003 (code from outside torch, numpy and the standard
library) or CKPT004 (fine to construct, but torch's weights-only loader refuses it).
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum

from ckpt_tool.model.checkpoint import Safety
from ckpt_tool.model.record import Record
from ckpt_tool.pickles.safety import classify, rate


class Verdict(str, Enum):
    WEIGHTS_ONLY = "weights-only"
    """On torch's allow-list: nothing to report."""
    DATA = "data"
    """Reviewed: builds only data, but torch.load(weights_only=True) still refuses it (CKPT004)."""
    REVIEWED = "reviewed"
    """Reviewed: harmless to construct (torch.nn modules); CKPT004 where torch.load reads it,
    CKPT003 elsewhere."""
    ALLOWED = "allowed"
    """Listed in the project's ``allowed-globals``: nothing to report."""
    TORCHSCRIPT_CLASS = "torchscript-class"
    """A ``__torch__`` class compiled from a TorchScript archive's own code, or a
    ``torch.ScriptObject`` whose state names only reviewed TorchScript custom classes: CKPT004,
    never with ``add_safe_globals`` (allowing it would admit every such class)."""
    CUSTOM = "custom"
    CODE_EXECUTION = "code-execution"
    """Known to run code or touch the system, or a dotted attribute path (CKPT002)."""
    NOT_REVIEWED = "not-reviewed"
    """A torch, numpy or standard-library global ckpt has not reviewed (CKPT002)."""

    @property
    def weights_only_refuses(self) -> bool:
        return self not in (Verdict.WEIGHTS_ONLY, Verdict.ALLOWED)

    @property
    def may_run_code(self) -> bool:
        """Reported by CKPT002."""
        return self in (Verdict.CODE_EXECUTION, Verdict.NOT_REVIEWED)

    @property
    def may_be_allow_listed(self) -> bool:
        """Reviewed by ckpt as harmless: CKPT004 may print ``add_safe_globals`` for it."""
        return self in (Verdict.DATA, Verdict.REVIEWED)


class AllowedGlobals(Record):
    """The project's extra allowed globals: exact names (``pkg.mod.Class``) or every top-level
    name of one module (``pkg.mod.*``). A wildcard never covers a dotted attribute path, which
    could walk from an allowed module into anything it imports."""

    __slots__ = ("names", "modules")
    names: frozenset[str]
    modules: frozenset[str]

    def __init__(self, names: frozenset[str] = frozenset(),
                 modules: frozenset[str] = frozenset()) -> None:
        self.names = names
        self.modules = modules

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


_BY_SAFETY = {
    Safety.WEIGHTS_ONLY: Verdict.WEIGHTS_ONLY,
    Safety.DATA: Verdict.DATA,
    Safety.REVIEWED: Verdict.REVIEWED,
    Safety.CODE: Verdict.CODE_EXECUTION,
    Safety.NOT_REVIEWED: Verdict.NOT_REVIEWED,
    Safety.CUSTOM: Verdict.CUSTOM,
}


def judge(module: str, name: str, allowed: AllowedGlobals, torchscript: bool = False) -> Verdict:
    """``torchscript``: the pickle is in a TorchScript archive, where ``__torch__.*`` names are
    classes compiled from the archive's own TorchScript code, not Python imports."""
    if allowed.allows(module, name):
        return Verdict.ALLOWED
    if torchscript and (module == "__torch__" or module.startswith("__torch__.")):
        return Verdict.TORCHSCRIPT_CLASS
    return _BY_SAFETY[classify(module, name)]


SCRIPT_OBJECT = "torch.ScriptObject"
REVIEWED_TORCHBIND = frozenset({
    *(f"__torch__.torch.classes.quantized.{name}" for name in (
        "LinearPackedParamsBase", "Conv2dPackedParamsBase", "Conv3dPackedParamsBase",
        "EmbeddingPackedParamsBase")),
    "__torch__.torch.classes.rnn.CellParamsBase",
})
"""The TorchScript custom classes a ``torch.ScriptObject`` may be rebuilt as, reviewed: the
packed weights of quantized Linear, Conv and Embedding modules and a quantized LSTM's cell
parameters (``torch.save`` of a ``quantize_dynamic`` model writes them). Unpickling one calls
``ScriptObject.__setstate__``, which runs the ``__setstate__`` of the class the pickle names;
these repack tensors
(aten/native/quantized/cpu/fbgemm_utils.cpp, aten/native/RNN.cpp) and do nothing else."""


CALLING_RUNS_CODE = {
    "torch.distributed.device_mesh.DeviceMesh": (
        "DeviceMesh(...) sets up torch.distributed's default process group from the "
        "environment (under a launcher, a network rendezvous); DTensor files rebuild their mesh "
        "with __new__ and __setstate__, never by calling it"),
}
"""Reviewed classes whose ``__init__`` runs code: harmless as copyreg rebuilds them, not when
the pickle calls the class (REDUCE, INST, OBJ)."""

_NUMPY_STATE = frozenset({
    *(f"{core}.{name}" for core in ("numpy.core.multiarray", "numpy._core.multiarray")
      for name in ("_reconstruct", "scalar")),
    *(f"{core}._frombuffer" for core in ("numpy.core.numeric", "numpy._core.numeric")),
    "numpy.ndarray", "numpy.dtype",
})


def never_allow_list(full_name: str) -> bool:
    """Reviewed, and judged by what the file gives them, but never to be added to torch's
    allow-list: with it, any file could give them more. numpy trusts the dtype flags a pickle
    states (forged ones make it read raw bytes as object pointers); a ScriptObject is whatever
    TorchScript class its state names; a DeviceMesh may be called."""
    return (full_name in _NUMPY_STATE or full_name.startswith("numpy.dtypes.")
            or full_name in CALLING_RUNS_CODE or full_name == SCRIPT_OBJECT)


def reason(module: str, name: str) -> str:
    """The policy's reason for its verdict on ``module.name`` (the table's reason column)."""
    return rate(module, name).reason

