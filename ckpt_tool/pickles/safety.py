"""Classify the globals a pickle names: what torch's weights-only loader accepts, what ckpt knows
to be plain data, and what can run code.

A global is safe only if it is on a list here; being absent from the code-execution table does not
make it safe (that table only decides how an unsafe global is reported).
"""

from __future__ import annotations

import sys
from enum import Enum
from functools import lru_cache
from pathlib import Path

from ckpt_tool.model.checkpoint import Safety

_DATA = Path(__file__).with_name("data") / "torch_weights_only_globals.txt"


class Category(str, Enum):
    """How lint reports a global that is not safe."""

    CODE_EXECUTION = "code-execution"
    TORCH_CLASS = "torch-class"
    CUSTOM = "custom"


@lru_cache(maxsize=1)
def torch_weights_only_globals() -> frozenset[str]:
    lines = _DATA.read_text(encoding="utf-8").splitlines()
    return frozenset(line for line in lines if line and not line.startswith("#"))


_NUMPY_CORE = ("numpy.core.multiarray", "numpy._core.multiarray")
KNOWN_SAFE: frozenset[str] = frozenset(
    {
        *(f"{m}._reconstruct" for m in _NUMPY_CORE),
        *(f"{m}.scalar" for m in _NUMPY_CORE),
        "numpy.ndarray",
        "numpy.dtype",
        "argparse.Namespace",
        "collections.defaultdict",
        "collections.deque",
        "builtins.frozenset",
        # Plain data types (protocol 2 names them for subclasses, via copyreg._reconstructor).
        "builtins.dict",
        "builtins.list",
        "builtins.tuple",
        "builtins.int",
        "builtins.float",
        "builtins.str",
        "builtins.bytes",
        "builtins.bool",
        "builtins.slice",
        # TorchScript's pickle helpers: each returns its argument (torch/jit/_pickle.py).
        *(f"torch.jit._pickle.{name}" for name in (
            "build_intlist", "build_tensorlist", "build_doublelist", "build_boollist",
            "build_tensor_from_id", "restore_type_tag")),
        "builtins.range",
        "builtins.object",
        "copyreg._reconstructor",
        "copyreg.__newobj__",
        "copyreg.__newobj_ex__",
        "datetime.datetime",
        "datetime.date",
        "datetime.time",
        "datetime.timedelta",
        "datetime.timezone",
        "decimal.Decimal",
        "fractions.Fraction",
        "uuid.UUID",
        "pathlib.Path",
        "pathlib.PosixPath",
        "pathlib.WindowsPath",
        "pathlib.PurePosixPath",
        "pathlib.PureWindowsPath",
        # torch.distributed.checkpoint's .metadata: dataclasses of plain values and the enum
        # TensorProperties pickles (torch/distributed/checkpoint/metadata.py, filesystem.py);
        # the unpickler decodes them as records (DATA_RECORDS).
        *(f"torch.distributed.checkpoint.metadata.{name}" for name in (
            "Metadata", "TensorStorageMetadata", "ChunkStorageMetadata", "BytesStorageMetadata",
            "TensorProperties", "StorageMeta", "MetadataIndex", "_MEM_FORMAT_ENCODING")),
        "torch.distributed.checkpoint.filesystem._StorageInfo",
        "torch.distributed.checkpoint._hf_utils._HFStorageInfo",
        "torch.distributed._shard.sharded_tensor.metadata.TensorProperties",
        "torch.distributed._shard.sharded_tensor.metadata.MEM_FORMAT_ENCODING",
    }
)

_NUMPY_DTYPE_MODULE = "numpy.dtypes"

# Modules whose every global can run code or touch the system, and single callables that can.
_CODE_EXECUTION_MODULES = (
    "os", "posix", "nt", "sys", "subprocess", "runpy", "pty", "socket", "shutil", "importlib",
    "pickle", "_pickle", "marshal", "ctypes", "code", "codeop", "pdb", "bdb", "webbrowser",
    "multiprocessing", "threading", "_thread", "asyncio", "signal", "platform", "tempfile",
    "glob", "io", "_io", "zipimport", "pkgutil", "site", "cProfile", "profile", "timeit",
    "trace", "doctest", "unittest", "http", "urllib", "ftplib", "smtplib", "telnetlib",
    "xmlrpc", "requests", "dill", "cloudpickle", "joblib", "types", "inspect", "gc",
    "builtins.__loader__", "torch.hub", "torch.jit", "torch._C", "torch.utils.cpp_extension",
    "torch.package", "torch._dynamo", "torch._inductor", "torch.cuda", "torch.distributed",
    "torch.multiprocessing", "torch.ops", "torch.library", "numpy.testing", "numpy.f2py",
    "numpy.distutils", "numpy.ctypeslib", "numpy.lib.npyio", "numpy.load",
)
_CODE_EXECUTION_NAMES = frozenset(
    {
        "builtins.eval", "builtins.exec", "builtins.compile", "builtins.open",
        "builtins.getattr", "builtins.setattr", "builtins.delattr", "builtins.__import__",
        "builtins.globals", "builtins.locals", "builtins.vars", "builtins.input",
        "builtins.breakpoint", "builtins.help", "builtins.memoryview", "builtins.type",
        "builtins.super", "builtins.print", "builtins.exit", "builtins.quit", "builtins.apply",
        "builtins.execfile", "builtins.file", "operator.attrgetter", "operator.methodcaller",
        "operator.getitem", "functools.partial", "functools.reduce", "functools.partialmethod",
        "torch.load", "torch.storage._load_from_bytes", "torch.serialization.load",
        "torch.serialization._load", "torch.serialization._legacy_load", "torch.from_file",
        "torch.save", "torch.compile", "numpy.load", "numpy.fromfile", "numpy.save",
        "numpy.tofile", "numpy.memmap", "numpy.lib.format.read_array",
    }
)


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


def classify(full_name: str) -> Safety:
    if full_name in torch_weights_only_globals():
        return Safety.WEIGHTS_ONLY
    if full_name in KNOWN_SAFE:
        return Safety.SAFE
    module, _, name = full_name.rpartition(".")
    if module == _NUMPY_DTYPE_MODULE and name.endswith("DType") and name.isidentifier():
        return Safety.SAFE
    return Safety.UNKNOWN


def _in_module(full_name: str, modules: tuple[str, ...]) -> bool:
    return any(full_name == m or full_name.startswith(m + ".") for m in modules)


def categorize(module: str, name: str) -> Category:
    """How to report an unsafe global. ``name`` may be a dotted attribute path (protocol 4)."""
    full = f"{module}.{name}"
    if "." in name:
        # An attribute path reaches any object: judge the whole path, never its first part.
        return Category.CODE_EXECUTION
    if full in _CODE_EXECUTION_NAMES or _in_module(full, _CODE_EXECUTION_MODULES):
        return Category.CODE_EXECUTION
    top = module.split(".")[0]
    if top in ("torch", "numpy"):
        return Category.TORCH_CLASS if name[:1].isupper() else Category.CODE_EXECUTION
    if top in sys.stdlib_module_names or top in ("__builtin__", "copy_reg"):
        return Category.CODE_EXECUTION
    return Category.CUSTOM


def is_torch_module_class(module: str, name: str) -> bool:
    return module.startswith("torch.") and name[:1].isupper() and "." not in name


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
