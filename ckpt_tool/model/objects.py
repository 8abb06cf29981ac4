"""The values a checkpoint's pickle holds besides tensors and plain Python data: inert
placeholders for what ckpt does not import, and records for the few library types it decodes.

Readers build these (the restricted unpickler, and readers of JSON-described formats); commands
only read them. Nothing here is ever called with the file's code.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any, ClassVar

from ckpt_tool.errors import GlobalMutation
from ckpt_tool.model.dtypes import DType

BUILT: ContextVar[list[Any] | None] = ContextVar("ckpt_built", default=None)
"""While a reader builds a pickle: the objects whose construction or state a verdict may need
(called placeholders, numpy dtypes, ScriptObjects), in the order they were built."""


def _note_built(value: Any) -> None:
    built = BUILT.get()
    if built is not None:
        built.append(value)


class _PlaceholderType(type):
    """The type of placeholder classes, which are shared by every file read in the process: BUILD
    on the class itself (a pickle setting attributes of a class or function it names, not of an
    object it built) is refused, so one file cannot change what the next one reads."""

    @property
    def __setstate__(cls) -> Any:
        raise GlobalMutation(f"{cls.module}.{cls.qualname}")


class Opaque(metaclass=_PlaceholderType):
    """An object of a class, or the result of a callable, that ckpt does not import."""

    __slots__ = ("args", "called", "entries", "items", "kwargs", "state")
    module: ClassVar[str] = ""
    qualname: ClassVar[str] = ""

    def __new__(cls, *args: Any, **kwargs: Any) -> Opaque:
        obj = object.__new__(cls)
        obj.args, obj.kwargs, obj.state, obj.called = args, kwargs, None, False
        obj.items = obj.entries = ()  # lists only once something is added: objects stay small
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Only a call of the class runs __init__ (REDUCE, INST, OBJ); copyreg's reconstruction
        # (NEWOBJ, __newobj__, _reconstructor) only __new__. What the class's own __init__
        # would do with the file's arguments is then the question.
        self.called = True
        _note_built(self)

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def append(self, item: Any) -> None:
        if type(self.items) is tuple:
            self.items = []
        self.items.append(item)

    def extend(self, items: Any) -> None:
        if type(self.items) is tuple:
            self.items = []
        self.items.extend(items)

    def add(self, item: Any) -> None:
        self.append(item)

    def __setitem__(self, key: Any, value: Any) -> None:
        if type(self.entries) is tuple:
            self.entries = []
        self.entries.append((key, value))

    def __call__(self, *args: Any, **kwargs: Any) -> Opaque:
        return placeholder("<call>", f"{self.global_name}(...)")(self, *args, **kwargs)

    @classmethod
    def global_name_of(cls) -> str:
        return f"{cls.module}.{cls.qualname}"

    @property
    def global_name(self) -> str:
        return type(self).global_name_of()

    def attributes(self) -> dict[str, Any] | None:
        """The instance state as attribute names, when it is a dict (the usual ``__dict__``)."""
        state = self.state
        if isinstance(state, tuple) and len(state) == 2 and isinstance(state[0], dict | None):
            merged = dict(state[0] or {})
            if isinstance(state[1], dict):
                merged.update(state[1])
            return merged
        return state if isinstance(state, dict) else None

    def __repr__(self) -> str:
        return f"<{self.global_name}>"


_PLACEHOLDERS: dict[tuple[str, str], type[Opaque]] = {}


def placeholder(module: str, name: str) -> type[Opaque]:
    key = (module, name)
    cls = _PLACEHOLDERS.get(key)
    if cls is None:
        attrs = {"__slots__": (), "module": module, "qualname": name}
        cls = _PlaceholderType("Opaque", (Opaque,), attrs)
        _PLACEHOLDERS[key] = cls
    return cls


def is_placeholder_type(value: Any) -> bool:
    return isinstance(value, type) and issubclass(value, Opaque)


class DataRecord:
    """An instance of a library dataclass that holds only data (DCP's metadata records): its
    fields, never the class. One subclass per class name, made by :func:`data_record`."""

    __slots__ = ("fields",)
    module: ClassVar[str] = ""
    qualname: ClassVar[str] = ""
    tuple_fields: ClassVar[tuple[str, ...]] = ()
    """Field names of a state given as a tuple (a class with its own ``__getstate__``)."""

    def __new__(cls, *_: Any, **__: Any) -> DataRecord:
        obj = object.__new__(cls)
        obj.fields = {}
        return obj

    def __init__(self, *_: Any, **__: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2 and isinstance(state[0], dict | None):
            state = {**(state[0] or {}), **(state[1] if isinstance(state[1], dict) else {})}
        if isinstance(state, dict):
            self.fields.update((str(key), value) for key, value in state.items())
        elif isinstance(state, tuple) and len(state) == len(self.tuple_fields):
            self.fields.update(zip(self.tuple_fields, state, strict=True))
        else:
            self.fields["state"] = state

    def get(self, name: str, default: Any = None) -> Any:
        return self.fields.get(name, default)

    @classmethod
    def type_name(cls) -> str:
        return cls.qualname

    def __repr__(self) -> str:
        inner = ", ".join(f"{key}={value!r}" for key, value in self.fields.items())
        return f"{self.qualname}({inner})"


_DATA_RECORDS: dict[tuple[str, str], type[DataRecord]] = {}


def data_record(module: str, name: str, tuple_fields: tuple[str, ...] = ()) -> type[DataRecord]:
    key = (module, name)
    cls = _DATA_RECORDS.get(key)
    if cls is None:
        attrs = {"__slots__": (), "module": module, "qualname": name,
                 "tuple_fields": tuple_fields}
        cls = type(name, (DataRecord,), attrs)
        _DATA_RECORDS[key] = cls
    return cls


class StorageType:
    """What ``torch.FloatStorage`` (or ``UntypedStorage``) stands for: a storage of one dtype."""

    def __init__(self, dtype: DType) -> None:
        self.dtype = dtype

    def __repr__(self) -> str:
        return f"<storage {self.dtype.name}>"


class Namespace:
    """``argparse.Namespace``: its fields."""

    def __new__(cls, *_: Any, **fields: Any) -> Namespace:
        obj = object.__new__(cls)
        obj.fields = dict(fields)
        return obj

    def __init__(self, *_: Any, **fields: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, dict):
            self.fields.update(state)

    def __repr__(self) -> str:
        return "Namespace(" + ", ".join(f"{k}={v!r}" for k, v in self.fields.items()) + ")"


class NumpyDType:
    """``numpy.dtype(spec)`` and the state ``__setstate__`` gives it. numpy takes the dtype's
    flags from that state and trusts them: flags that do not belong to the type (an object dtype
    without its reference-counting flags) make numpy read raw bytes as object pointers, so
    ``forged`` records a state whose flags are not numpy's own for the type."""

    def __init__(self, spec: Any = None, *_: Any) -> None:
        self.spec = spec if isinstance(spec, str) else repr(spec)
        self.byteorder = "="
        self.forged = False

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) > 1 and isinstance(state[1], str):
            self.byteorder = state[1]
        self.forged = not _numpy_flags_fit(self.spec, state)
        _note_built(self)

    @property
    def text(self) -> str:
        order = "" if self.byteorder in ("=", "|") else self.byteorder
        return order + self.spec

    def __repr__(self) -> str:
        return f"dtype({self.text!r})"


_OBJECT_FLAGS = 63
"""numpy's flags of the object dtype (NPY_OBJECT_DTYPE_FLAGS): reference-counted items."""
_UNICODE_FLAGS = 8
_FIELDS_FLAG = 16
"""NPY_FROM_FIELDS: a structured dtype's flags come from its fields."""


def _numpy_flags_fit(spec: str, state: Any) -> bool:
    """The state's flags are the ones numpy gives this type: for a plain dtype, 63 for objects,
    8 for unicode strings, 0 for the rest; a structured or sub-array dtype without object fields,
    its fields' flag (16) or none. Anything else (a structured dtype holding objects too) is not
    one ckpt vouches for."""
    if not isinstance(state, tuple) or len(state) < 8:
        return False
    subarray, names, fields, flags = state[2], state[3], state[4], state[7]
    if type(flags) is not int:
        return False
    kind = spec.lstrip("<>=|")[:1]
    if subarray is None and names is None and fields is None:
        expected = {"O": _OBJECT_FLAGS, "U": _UNICODE_FLAGS}.get(kind, 0)
        return flags == expected
    parts = [field[0] for field in (fields or {}).values() if isinstance(field, tuple) and field]
    if isinstance(subarray, tuple) and subarray:
        parts.append(subarray[0])
    if kind == "O" or not all(isinstance(part, NumpyDType) and not part.forged
                              and part.spec.lstrip("<>=|")[:1] != "O" for part in parts):
        return False
    return flags in (0, _FIELDS_FLAG)


class NumpyArray:
    """A numpy array pickled inline: shape, dtype and (a copy of) its raw bytes."""

    def __init__(self, *_: Any) -> None:
        self.shape: tuple[int, ...] = ()
        self.dtype: NumpyDType | None = None
        self.data: bytes | None = None
        self.fortran = False

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 5:
            _, shape, dtype, fortran, data = state
            self.shape = tuple(shape) if isinstance(shape, tuple | list) else ()
            self.dtype = dtype if isinstance(dtype, NumpyDType) else None
            self.fortran = bool(fortran)
            self.data = data if isinstance(data, bytes) else None

    def __repr__(self) -> str:
        dtype = self.dtype.text if self.dtype else "?"
        return f"array(shape={list(self.shape)}, dtype={dtype})"


class DefaultDict(dict):
    """``collections.defaultdict``: a dict; its factory is kept, never called."""

    def __init__(self, default_factory: Any = None, *_: Any) -> None:
        super().__init__()
        self.default_factory = default_factory


class StorageView:
    """What persistent_load returns: a storage of the file, seen with one dtype."""

    __slots__ = ("dtype", "element_offset", "storage")

    def __init__(self, storage: Any, dtype: DType, element_offset: int = 0) -> None:
        self.storage, self.dtype, self.element_offset = storage, dtype, element_offset


class ScriptObject:
    """``torch.ScriptObject``: an instance of a TorchScript custom class (``torch.classes.*``, such
    as quantized Linear's packed weights) pickled by Python. Its state is what the class's
    ``__getstate__`` returned, and the class's qualified name
    (torch/csrc/jit/python/script_init.cpp)."""

    def __new__(cls, *_: Any) -> ScriptObject:
        obj = object.__new__(cls)
        obj.state, obj.class_name = None, None
        return obj

    def __init__(self, *_: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2 and isinstance(state[1], str):
            self.state, self.class_name = state
        else:
            self.state = state
        _note_built(self)

    def __repr__(self) -> str:
        return f"<ScriptObject {self.class_name or '?'}>"


class ScriptArchive:
    """What ``torch.jit.load`` builds from a TorchScript archive: the module (``data.pkl``) and
    the constants its code names ``CONSTANTS.c0``, ``c1``... (``constants.pkl``)."""

    def __init__(self, module: Any, constants: tuple[Any, ...] = ()) -> None:
        self.module, self.constants = module, constants

    def __repr__(self) -> str:
        return f"<TorchScript archive of {self.module!r}>"


class ConfigNode:
    """An OmegaConf node (``DictConfig``, ``ListConfig``, ``AnyNode``, ``IntegerNode``...) as the
    plain value it holds: containers keep ``_content``, value nodes ``_val``; the rest of their
    state (parent links, type metadata, flags) is OmegaConf bookkeeping and is dropped."""

    def __new__(cls, *_: Any, **__: Any) -> ConfigNode:
        obj = object.__new__(cls)
        obj.content = None
        return obj

    def __init__(self, *_: Any, **__: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, dict):
            self.content = state.get("_content", state.get("_val"))

    def plain(self) -> Any:
        """The node as dicts, lists and scalars (a node inside itself becomes ``"<cycle>"``)."""
        return _plain_config(self, frozenset(), 0)

    def __repr__(self) -> str:
        return f"Config({self.plain()!r})"


_MAX_CONFIG_DEPTH = 100


def _plain_config(value: Any, ancestors: frozenset[int], depth: int) -> Any:
    if depth > _MAX_CONFIG_DEPTH:
        return "<too deep>"
    if isinstance(value, ConfigNode):
        if id(value) in ancestors:
            return "<cycle>"
        return _plain_config(value.content, ancestors | {id(value)}, depth + 1)
    if isinstance(value, dict):
        return {key: _plain_config(item, ancestors, depth + 1) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain_config(item, ancestors, depth + 1) for item in value]
    return value
