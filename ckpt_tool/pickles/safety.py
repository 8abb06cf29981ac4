"""Classify the globals a pickle names by ckpt's reviewed policy: torch's weights-only
allow-list (``data/torch_weights_only_globals.txt``, generated from torch) and ckpt's own reviewed
table (``data/reviewed_globals.txt``, see ``reviewed.py``).

A global is fine only if one of the two lists it. Everything else is judged by where it comes
from, never by the shape of its name: a dotted attribute path or a ``code`` entry runs code, an
unlisted torch, numpy or standard-library global is "not reviewed", anything else is custom code.
"""

from __future__ import annotations

import sys
from functools import lru_cache
from pathlib import Path

from ckpt_tool.model.checkpoint import Safety
from ckpt_tool.model.record import Record
from ckpt_tool.pickles.reviewed import Tier, reviewed_table

_DATA = Path(__file__).with_name("data") / "torch_weights_only_globals.txt"
LIBRARIES = ("torch", "numpy")
"""Top-level packages whose unlisted globals are "not reviewed" rather than custom code."""
TORCH_REQUIREMENTS = ("sympy", "mpmath", "networkx", "jinja2", "markupsafe", "fsspec",
                      "filelock", "typing_extensions", "setuptools", "pkg_resources",
                      "_distutils_hack")
"""Top-level modules every torch install brings (its requirements and theirs, torch 2.13): a
global from one is library code any loader can import (``sympy.core.sympify.sympify`` evaluates
text), never a class of the file's author; unlisted, it is "not reviewed" as well."""
_PYTHON2_STDLIB = ("__builtin__", "copy_reg")


@lru_cache(maxsize=1)
def torch_weights_only_globals() -> frozenset[str]:
    lines = _DATA.read_text(encoding="utf-8").splitlines()
    return frozenset(line for line in lines if line and not line.startswith("#"))


class Rating(Record):
    """A global's safety and the reason behind it (from the table, or why it is unlisted)."""

    __slots__ = ("safety", "reason")
    safety: Safety
    reason: str

    def __init__(self, safety: Safety, reason: str) -> None:
        self.safety = safety
        self.reason = reason


_TIER_SAFETY = {Tier.DATA: Safety.DATA, Tier.REVIEWED: Safety.REVIEWED, Tier.CODE: Safety.CODE}
_ATTRIBUTE_PATH = ("an attribute path from a module reaches any object that module holds or "
                   "imports, so it is judged as a whole and never trusted")


@lru_cache(maxsize=4096)
def rate(module: str, name: str) -> Rating:
    """How ckpt rates the global ``module.name`` (``name`` may be a protocol-4 dotted path)."""
    if "." in name:
        return Rating(Safety.CODE, _ATTRIBUTE_PATH)
    full = f"{module}.{name}"
    if full in torch_weights_only_globals():
        return Rating(Safety.WEIGHTS_ONLY, "on torch's weights-only allow-list")
    entry = reviewed_table().lookup(full)
    if entry is not None:
        return Rating(_TIER_SAFETY[entry.tier], entry.reason)
    top = module.split(".")[0]
    if (top in LIBRARIES or top in TORCH_REQUIREMENTS or top in sys.stdlib_module_names
            or top in _PYTHON2_STDLIB):
        return Rating(Safety.NOT_REVIEWED, f"a {_library(top)} global ckpt has not reviewed")
    return Rating(Safety.CUSTOM, "from outside torch, numpy and the standard library")


def classify(module: str, name: str) -> Safety:
    return rate(module, name).safety


def _library(top: str) -> str:
    if top in TORCH_REQUIREMENTS:
        return f"{top} (a requirement of torch)"
    return top if top in LIBRARIES else "standard-library"


# The opcodes ``torch._weights_only_unpickler.Unpickler.load`` implements (torch 2.13).
TORCH_WEIGHTS_ONLY_OPCODES = frozenset(
    {
        "GLOBAL", "NEWOBJ", "REDUCE", "BUILD", "APPEND", "APPENDS", "SETITEM", "SETITEMS", "MARK",
        "TUPLE", "TUPLE1", "TUPLE2", "TUPLE3", "NONE", "NEWFALSE", "NEWTRUE", "EMPTY_TUPLE",
        "EMPTY_LIST", "EMPTY_DICT", "EMPTY_SET", "BININT", "BININT1", "BININT2", "BINFLOAT",
        "BINUNICODE", "SHORT_BINSTRING", "BINPERSID", "BINGET", "LONG_BINGET", "BINPUT",
        "LONG_BINPUT", "LONG1", "PROTO", "STOP",
    }
)


def _regenerate() -> None:  # pragma: no cover - maintenance helper, needs torch
    from torch import __version__ as torch_version
    from torch._weights_only_unpickler import _get_allowed_globals

    version = torch_version.split("+")[0]
    header = (
        f"# Globals torch.load(weights_only=True) accepts by default, from torch {version}.\n"
        "# Regenerate with: python -m ckpt_tool.pickles.safety --regenerate (needs torch); "
        "tests/test_safety.py checks it.\n"
    )
    _DATA.write_text(header + "".join(f"{k}\n" for k in sorted(_get_allowed_globals())))


if __name__ == "__main__" and "--regenerate" in sys.argv:  # pragma: no cover
    _regenerate()
