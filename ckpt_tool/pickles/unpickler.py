"""A restricted unpickler that imports nothing.

``find_class`` never imports: the reconstructors torch, numpy and the standard library use for
plain data (tensors, OrderedDict, torch.Size, dtypes, numpy arrays, argparse.Namespace...) map to
functions here that build neutral values, and every other global becomes an inert placeholder type
(a subclass of :class:`Opaque`) that records the arguments it was called with and the state it was
given. Nothing the file names is ever called. The C ``pickle.Unpickler`` does the parsing, so this
runs at C speed; ``pickle_scan`` has already checked the opcodes against the limits.
"""

from __future__ import annotations

import gc
import io
import pickle
import struct
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from ckpt_tool.errors import FormatError, GlobalMutation
from ckpt_tool.model import dtypes
from ckpt_tool.model.checkpoint import BuiltFacts, TensorRef
from ckpt_tool.model.dtypes import DType
from ckpt_tool.model.objects import (
    BUILT,
    ConfigNode,
    DataRecord,
    DefaultDict,
    Namespace,
    NumpyArray,
    NumpyDType,
    Opaque,
    ScriptObject,
    StorageType,
    StorageView,
    data_record,
    is_placeholder_type,
    placeholder,
)
from ckpt_tool.pickles.scan import GlobalUse, PickleScan, Unresolved, map_python2_name
from ckpt_tool.pickles.tensor_parts import (
    DTENSOR_TYPES,
    as_dtensor,
    rebuild_jagged,
    rebuild_nested_tensor,
)

# ---- records for known reconstructors -------------------------------------------------------


_SCALAR_FORMATS = {"f8": "d", "f4": "f", "i8": "q", "i4": "i", "i2": "h", "i1": "b", "u8": "Q",
                   "u4": "I", "u2": "H", "u1": "B", "b1": "?", "f2": "e"}


def _numpy_scalar(dtype: Any, data: Any) -> Any:
    """Decode a numpy scalar's bytes for the common kinds; otherwise keep a record."""
    if isinstance(dtype, NumpyDType) and isinstance(data, bytes):
        code = _SCALAR_FORMATS.get(dtype.spec)
        if code and struct.calcsize(code) == len(data):
            order = ">" if dtype.byteorder == ">" else "<"
            return struct.unpack(order + code, data)[0]
    return placeholder("numpy", "scalar")(dtype, data)


# ---- tensors -------------------------------------------------------------------------------


def _as_shape(value: Any) -> tuple[int, ...]:
    if type(value) is tuple:  # the usual case, tested without a generator (50,000 tensors)
        for v in value:
            if type(v) is not int:
                break
        else:
            return value
    if not isinstance(value, tuple | list) or not all(isinstance(v, int) for v in value):
        raise TypeError("shape must be a tuple of ints")
    return tuple(int(v) for v in value)


def _rebuild_tensor(
    storage: Any, storage_offset: int, size: Any, stride: Any, *_: Any
) -> TensorRef:
    if not isinstance(storage, StorageView):
        raise TypeError("not a storage")
    tensor = TensorRef(storage.dtype, _as_shape(size), _as_shape(stride),
                       int(storage_offset) + storage.element_offset, storage.storage)
    _check_bounds(tensor)
    return tensor


def _check_bounds(tensor: TensorRef) -> None:
    """A view must stay inside its storage (torch's ``set_`` refuses it otherwise)."""
    storage = tensor.storage
    if storage is None:
        return
    shape, stride = tensor.shape, tensor.stride
    if len(shape) != len(stride):
        raise FormatError(f"storage {storage.key}: a tensor's shape and stride differ in length")
    end = tensor.storage_offset + 1
    for size, step in zip(shape, stride):  # noqa: B905  # lengths compared just above
        if size <= 0 or step < 0:
            if size == 0:
                return  # an empty tensor touches no element
            raise FormatError(f"storage {storage.key}: negative size or stride")
        end += (size - 1) * step
    if tensor.storage_offset < 0:
        raise FormatError(f"storage {storage.key}: negative storage offset")
    dtype = tensor.dtype
    needed = end * dtype.itemsize if dtype.elements_per_byte == 1 else (
        dtype.bytes_for_elements(end))
    if needed > storage.nbytes:
        raise FormatError(
            f"a tensor reaches element {end} of storage {storage.key}, which holds "
            f"{storage.nbytes // dtype.itemsize * dtype.elements_per_byte}"
        )


def _rebuild_tensor_v2(
    storage: Any, storage_offset: int, size: Any, stride: Any, requires_grad: Any = False,
    backward_hooks: Any = None, metadata: Any = None,
) -> TensorRef:
    if type(storage) is not StorageView or type(storage_offset) is not int:
        raise TypeError("not a storage")
    tensor = TensorRef(storage.dtype, _as_shape(size), _as_shape(stride),
                       storage_offset + storage.element_offset, storage.storage,
                       requires_grad is True)
    _check_bounds(tensor)
    if requires_grad is not True and requires_grad is not False:
        tensor.requires_grad = bool(requires_grad)
    if metadata:
        tensor.set_extra("metadata", metadata)
    return tensor


def _rebuild_tensor_v3(
    storage: Any, storage_offset: int, size: Any, stride: Any, requires_grad: Any,
    backward_hooks: Any, dtype: Any, metadata: Any = None,
) -> TensorRef:
    tensor = _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad,
                                backward_hooks, metadata)
    if isinstance(dtype, DType):
        tensor.dtype = dtype
    return tensor


def _mark_parameter(tensor: TensorRef) -> None:
    """A plain tensor becomes a parameter; a quantized, nested or distributed one keeps its kind
    (what convert and inspect need to know about it)."""
    if tensor.kind == "tensor":
        tensor.kind = "parameter"


def _rebuild_parameter(data: Any, requires_grad: Any, backward_hooks: Any, *rest: Any) -> TensorRef:
    if not isinstance(data, TensorRef):
        raise TypeError("not a tensor")
    _mark_parameter(data)
    data.requires_grad = bool(requires_grad)
    if rest:
        data.set_extra("state", rest[0])
    return data


def _rebuild_qtensor(
    storage: Any, storage_offset: int, size: Any, stride: Any, quantizer_params: Any,
    requires_grad: Any, backward_hooks: Any,
) -> TensorRef:
    tensor = _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad)
    tensor.kind = "quantized"
    tensor.set_extra("quantizer", quantizer_params)
    return tensor


def _rebuild_sparse_tensor(layout: Any, data: Any) -> TensorRef:
    if not isinstance(data, tuple) or len(data) < 3:
        raise TypeError("sparse data")
    if layout == "sparse_coo":
        indices, values, size = data[0], data[1], data[2]
        components = {"indices": indices, "values": values}
    else:
        compressed, plain, values, size = data[:4]
        components = {"compressed_indices": compressed, "plain_indices": plain, "values": values}
    if not isinstance(values, TensorRef):
        raise TypeError("sparse values")
    shape = _as_shape(size)
    return TensorRef(values.dtype, shape, (), 0, None, kind="sparse", layout=str(layout),
                     device_override=values.device, extra={"components": components})


def _rebuild_meta_tensor_no_storage(dtype: Any, size: Any, stride: Any, requires_grad: Any = False,
                                    *_: Any) -> TensorRef:
    if not isinstance(dtype, DType):
        raise TypeError("dtype")
    return TensorRef(dtype, _as_shape(size), _as_shape(stride), 0, None, bool(requires_grad),
                     kind="meta", device_override="meta")


def _rebuild_wrapper_subclass(cls: Any, dtype: Any, size: Any, stride: Any, storage_offset: Any,
                              layout: Any, device: Any, requires_grad: Any) -> TensorRef:
    if not isinstance(dtype, DType):
        raise TypeError("dtype")
    return TensorRef(dtype, _as_shape(size), _as_shape(stride), int(storage_offset), None,
                     bool(requires_grad), kind="subclass", device_override=str(device),
                     extra={"type": _type_name(cls)})


def _rebuild_device_tensor(data: Any, dtype: Any, device: Any, requires_grad: Any) -> TensorRef:
    if isinstance(data, TensorRef):
        data.device_override = str(device)
        data.requires_grad = bool(requires_grad)
        return data
    if not isinstance(dtype, DType) or not isinstance(data, NumpyArray):
        raise TypeError("device tensor")
    return TensorRef(dtype, data.shape, (), 0, None, bool(requires_grad), kind="numpy",
                     device_override=str(device))


def _rebuild_from_type_v2(func: Any, new_type: Any, args: Any, state: Any) -> Any:
    if not callable(func) or not isinstance(args, tuple):
        raise TypeError("rebuild_from_type")
    result = func(*args)
    if isinstance(result, TensorRef) and result.kind != "nested":
        type_name = _type_name(new_type)
        if type_name in DTENSOR_TYPES:
            local = as_dtensor(result, state)
            if local is not None:
                return local
        if type_name == "torch.nn.parameter.Parameter":
            _mark_parameter(result)
        elif type_name != "torch.Tensor":
            result.kind = "subclass"
            result.set_extra("type", type_name)
        if state:
            result.set_extra("state", state)
    return result


class Parameter:
    """``torch.nn.Parameter`` as a type, since NEWOBJ insists on one; it returns the tensor."""

    def __new__(cls, data: Any = None, requires_grad: Any = True, *_: Any) -> Any:
        if not isinstance(data, TensorRef):
            return placeholder("torch.nn.parameter", "Parameter")(data, requires_grad)
        _mark_parameter(data)
        data.requires_grad = bool(requires_grad)
        return data


def _type_name(value: Any) -> str:
    if is_placeholder_type(value):
        return value.global_name_of()
    if isinstance(value, KnownGlobal):
        return value.full_name
    return repr(value)


# ---- the table of known globals ------------------------------------------------------------


class KnownGlobal:
    """A global ckpt reconstructs itself; a call with unexpected arguments becomes a placeholder.
    Shared by every file read in the process, so a pickle cannot change it: no ``__dict__``, and
    BUILD on it (which in torch.load would set attributes of torch's own function) is refused."""

    __slots__ = ("build", "full_name")

    def __init__(self, full_name: str, build: Callable[..., Any]) -> None:
        self.full_name, self.build = full_name, build

    def __setstate__(self, state: Any) -> None:
        raise GlobalMutation(self.full_name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return self.build(*args, **kwargs)
        except (TypeError, ValueError, KeyError, IndexError, AttributeError, OverflowError):
            module, _, name = self.full_name.rpartition(".")
            return placeholder(module, name)(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<{self.full_name}>"


def _codecs_encode(obj: Any, encoding: str = "utf-8", *_: Any) -> bytes:
    if not isinstance(obj, str) or encoding.lower() not in ("latin1", "latin-1", "utf-8", "utf8",
                                                            "ascii"):
        raise TypeError("encode")
    return obj.encode(encoding)


def _bytearray(value: Any = b"", *rest: Any) -> bytearray:
    if isinstance(value, bytes | bytearray | list):
        return bytearray(value)
    if isinstance(value, str) and rest:
        return bytearray(_codecs_encode(value, *rest))
    raise TypeError("bytearray takes bytes here")  # bytearray(10**12) would allocate


def _collection(kind: type) -> Callable[..., Any]:
    def build(items: Any = ()) -> Any:
        if not isinstance(items, list | tuple | set | frozenset):
            raise TypeError("items")
        return kind(items)
    return build


def _size(values: Any = ()) -> tuple[int, ...]:
    return _as_shape(values)


def _device(kind: Any, index: Any = None) -> str:
    if not isinstance(kind, str) or not (index is None or isinstance(index, int)):
        raise TypeError("device")
    return kind if index is None or ":" in kind else f"{kind}:{index}"


def _layout(name: Any) -> str:
    if not isinstance(name, str):
        raise TypeError("layout")
    return name.removeprefix("torch.")


def _ordered_dict(items: Any = ()) -> OrderedDict:
    return OrderedDict(items if isinstance(items, list | tuple) else ())


def _reconstructor(cls: Any, base: Any = None, state: Any = None) -> Any:
    if is_placeholder_type(cls):
        return cls(*(() if state is None else (state,)))
    if cls in (OrderedDict, DefaultDict, Namespace, ConfigNode, ScriptObject) or (
            _is_data_record(cls)):
        return cls()
    raise TypeError("reconstructor")


def _newobj(cls: Any, *args: Any) -> Any:
    if is_placeholder_type(cls):
        return cls.__new__(cls, *args)
    if cls in (OrderedDict, DefaultDict, Namespace, NumpyArray, ConfigNode, ScriptObject) or (
            _is_data_record(cls)):
        return cls()
    raise TypeError("newobj")


def _same_list(data: Any) -> list:
    if not isinstance(data, list):
        raise TypeError("list")
    return data


def _restore_type_tag(value: Any, type_str: Any = None) -> Any:
    return value


OMEGACONF_NODES = (
    "omegaconf.dictconfig.DictConfig",
    "omegaconf.listconfig.ListConfig",
    *(f"omegaconf.nodes.{name}" for name in (
        "AnyNode", "StringNode", "IntegerNode", "FloatNode", "BooleanNode", "EnumNode",
        "BytesNode", "PathNode", "ValueNode", "UnionNode", "InterpolationResultNode")),
)
"""OmegaConf's containers and nodes (omegaconf 2.x), read as the values they hold."""


def _is_data_record(value: Any) -> bool:
    return isinstance(value, type) and issubclass(value, DataRecord)


# torch.distributed.checkpoint's metadata: dataclasses of plain values (metadata.py,
# filesystem.py). TensorProperties pickles its fields as a tuple (its own __getstate__).
_PROPERTIES = ("dtype", "layout", "requires_grad", "memory_format", "pin_memory")
_DCP = "torch.distributed.checkpoint"
DATA_RECORDS: dict[str, tuple[str, ...]] = {
    f"{_DCP}.metadata.Metadata": (),
    f"{_DCP}.metadata.TensorStorageMetadata": (),
    f"{_DCP}.metadata.ChunkStorageMetadata": (),
    f"{_DCP}.metadata.BytesStorageMetadata": (),
    f"{_DCP}.metadata.TensorProperties": _PROPERTIES,
    f"{_DCP}.metadata.StorageMeta": (),
    f"{_DCP}.metadata.MetadataIndex": (),
    f"{_DCP}.filesystem._StorageInfo": (),
    f"{_DCP}._hf_utils._HFStorageInfo": (),
    # torch 2.0 and 2.1 kept TensorProperties with the sharded tensor's metadata.
    "torch.distributed._shard.sharded_tensor.metadata.TensorProperties": _PROPERTIES,
}
_MEMORY_FORMATS = ("contiguous_format", "channels_last", "preserve_format")


def _memory_format(code: Any) -> str:
    """``_MEM_FORMAT_ENCODING(n)``, the enum TensorProperties pickles instead of a format."""
    if type(code) is not int or not 0 <= code < len(_MEMORY_FORMATS):
        raise ValueError("memory format")
    return _MEMORY_FORMATS[code]


def _known_globals() -> dict[str, Any]:
    table: dict[str, Any] = {
        "collections.OrderedDict": OrderedDict,
        "collections.defaultdict": DefaultDict,
        "argparse.Namespace": Namespace,
        "builtins.set": _collection(set),
        "builtins.frozenset": _collection(frozenset),
        "builtins.slice": slice,
        "builtins.complex": complex,
        "builtins.bytearray": _bytearray,
        "builtins.object": object,
        "builtins.Ellipsis": Ellipsis,
        "builtins.NotImplemented": NotImplemented,
        "_codecs.encode": _codecs_encode,
        "copyreg._reconstructor": _reconstructor,
        "copyreg.__newobj__": _newobj,
        "torch.Size": _size,
        "torch.device": _device,
        "torch.serialization._get_layout": _layout,
        "torch.nn.parameter.Parameter": Parameter,
        "torch._tensor._rebuild_from_type_v2": _rebuild_from_type_v2,
        "torch._utils._rebuild_tensor": _rebuild_tensor,
        "torch._utils._rebuild_tensor_v2": _rebuild_tensor_v2,
        "torch._utils._rebuild_tensor_v3": _rebuild_tensor_v3,
        "torch._utils._rebuild_parameter": _rebuild_parameter,
        "torch._utils._rebuild_parameter_with_state": _rebuild_parameter,
        "torch._utils._rebuild_qtensor": _rebuild_qtensor,
        "torch._utils._rebuild_sparse_tensor": _rebuild_sparse_tensor,
        "torch._utils._rebuild_meta_tensor_no_storage": _rebuild_meta_tensor_no_storage,
        "torch._utils._rebuild_wrapper_subclass": _rebuild_wrapper_subclass,
        "torch._utils._rebuild_device_tensor_from_numpy": _rebuild_device_tensor,
        "torch._utils._rebuild_device_tensor_from_cpu_tensor": _rebuild_device_tensor,
        "torch._utils._rebuild_nested_tensor": rebuild_nested_tensor,
        "torch.nested._internal.nested_tensor._rebuild_njt": rebuild_jagged,
        "torch.ScriptObject": ScriptObject,
    }
    # TorchScript's pickle helpers, each returning its argument (torch/jit/_pickle.py).
    for name in ("build_intlist", "build_tensorlist", "build_doublelist", "build_boollist"):
        table[f"torch.jit._pickle.{name}"] = _same_list
    table["torch.jit._pickle.restore_type_tag"] = _restore_type_tag
    for name in OMEGACONF_NODES:
        table[name] = ConfigNode


    for full_name, tuple_fields in DATA_RECORDS.items():
        module, _, name = full_name.rpartition(".")
        table[full_name] = data_record(module, name, tuple_fields)
    table[f"{_DCP}.metadata._MEM_FORMAT_ENCODING"] = _memory_format
    table["torch.distributed._shard.sharded_tensor.metadata.MEM_FORMAT_ENCODING"] = _memory_format
    for core in ("numpy.core.multiarray", "numpy._core.multiarray"):
        table[f"{core}._reconstruct"] = lambda cls, shape=(), typecode=b"", *_: NumpyArray()
        table[f"{core}.scalar"] = _numpy_scalar
    table["numpy.ndarray"] = NumpyArray
    table["numpy.dtype"] = NumpyDType
    for dtype in dtypes.DTYPES:
        table[f"torch.{dtype.name}"] = dtype
    for scheme in ("per_tensor_affine", "per_tensor_symmetric", "per_channel_affine",
                   "per_channel_symmetric", "per_channel_affine_float_qparams"):
        table[f"torch.{scheme}"] = scheme
    for name, value in list(table.items()):
        is_class = isinstance(value, type)
        if callable(value) and not is_class and not isinstance(value, DType):
            table[name] = KnownGlobal(name, value)
    return table


KNOWN_GLOBALS = _known_globals()
_STORAGE_MODULES = ("torch", "torch.cuda", "torch.storage")


def _storage_type(module: str, name: str) -> StorageType | None:
    if module not in _STORAGE_MODULES:
        return None
    if name in ("UntypedStorage", "TypedStorage", "ByteStorage"):
        return StorageType(dtypes.UINT8)
    dtype = dtypes.BY_STORAGE_CLASS.get(name)
    return StorageType(dtype) if dtype else None


PersistentLoad = Callable[[Any], Any]


def _no_persistent_ids(pid: Any) -> Any:
    raise pickle.UnpicklingError("a persistent id where none is expected")


class RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` whose ``find_class`` returns inert stand-ins and never imports."""

    def __init__(
        self, file: io.BufferedIOBase, persistent: PersistentLoad | None, protocol: int
    ) -> None:
        # Set before __init__, which is when the C unpickler looks persistent_load up.
        self.persistent_load = persistent or _no_persistent_ids
        super().__init__(file, encoding="utf-8")
        self._protocol = protocol
        self.referenced: dict[tuple[str, str], None] = {}

    def find_class(self, module: str, name: str) -> Any:
        # Overriding find_class skips CPython's own renaming of Python 2 names; redo it.
        module, name = map_python2_name(module, name, self._protocol)
        if module == "torch.tensor":  # torch.load renames this module the same way
            module = "torch._tensor"
        self.referenced.setdefault((module, name), None)
        storage = _storage_type(module, name)
        if storage is not None:
            return storage
        known = KNOWN_GLOBALS.get(f"{module}.{name}")
        if known is not None:
            return known
        return placeholder(module, name)



def unpickle(
    data: bytes | io.BytesIO, persistent: PersistentLoad | None = None, protocol: int = 2,
    built: BuiltFacts | None = None,
) -> tuple[Any, list[tuple[str, str]]]:
    """Build the object tree of one pickle (its bytes, or a stream of them); return it with the
    globals it referenced, in order.

    ``protocol`` is the pickle's PROTO (from the scan): below 3, Python 2 names are renamed.
    ``built`` collects what building showed (classes called, states given).
    """
    stream = data if isinstance(data, io.BytesIO) else io.BytesIO(data)
    unpickler = RestrictedUnpickler(stream, persistent, protocol)
    collecting = gc.isenabled()
    gc.disable()  # the tree only grows while loading; cycle collection would rescan it repeatedly
    log: list[Any] = []
    token = BUILT.set(log)
    try:
        root = unpickler.load()
    except FormatError:
        raise
    except RecursionError:
        raise FormatError("the pickle nests too deeply") from None
    except MemoryError:
        raise FormatError("the pickle asks for more memory than it can hold") from None
    except Exception as exc:  # any malformed pickle surfaces here; it is data, not our bug
        detail = str(exc).replace("\r", "\\r").replace("\n", "\\n")  # errors are one line
        raise FormatError(f"the pickle is corrupt: {type(exc).__name__}: {detail}") from None
    finally:
        BUILT.reset(token)
        if collecting:
            gc.enable()
    if built is not None:
        _record_built(log, built)
    return root, list(unpickler.referenced)


def _record_built(log: list[Any], built: BuiltFacts) -> None:
    for value in log:
        if isinstance(value, NumpyDType):
            if value.forged:
                built.forged_numpy_dtypes.append(value.text)
        elif isinstance(value, ScriptObject):
            built.script_classes.add(str(value.class_name))
        elif isinstance(value, Opaque) and value.called:
            built.called.add(value.global_name)


class _NameRecorder(RestrictedUnpickler):
    """Records every ``find_class`` call in order; persistent ids become inert values."""

    def __init__(self, file: io.BufferedIOBase, protocol: int) -> None:
        super().__init__(file, lambda pid: None, protocol)
        self.calls: list[tuple[str, str]] = []

    def find_class(self, module: str, name: str) -> Any:
        self.calls.append(_mapped(module, name, self._protocol))
        return super().find_class(module, name)


def _mapped(module: str, name: str, protocol: int) -> tuple[str, str]:
    module, name = map_python2_name(module, name, protocol)
    return ("torch._tensor" if module == "torch.tensor" else module), name


def _without_frames(data: bytes, scan: PickleScan) -> bytes:
    """The walked bytes with their FRAME opcodes cut out: the unpickler reads a whole frame
    before running any of it, so a pickle cut short inside one would resolve nothing. A FRAME
    only groups the opcodes that follow; without it they run the same."""
    parts, pos = [], scan.start
    for frame in scan.frames:
        parts.append(data[pos:frame])
        pos = frame + 9
    parts.append(data[pos : scan.end])
    return b"".join(parts)


def resolve_stack_globals(data: bytes, scan: PickleScan) -> None:
    """Name the scan's STACK_GLOBALs by building the pickle (as far as the walk got, so within
    the limits it checked) with the restricted unpickler and recording what ``find_class`` is
    asked for, in order: GLOBAL, INST and STACK_GLOBAL each ask once, so the calls line up with
    those opcodes. Names built any way on the stack (memo, REDUCE of ``str``...) come out exact;
    the ones after a point where building fails stay unresolved."""
    recorder = _NameRecorder(io.BytesIO(_without_frames(data, scan)), scan.protocol)
    collecting = gc.isenabled()
    gc.disable()
    try:
        recorder.load()
    except Exception:  # a broken pickle: what came before the break is resolved
        pass
    finally:
        if collecting:
            gc.enable()
    named = {use.offset: use for use in scan.globals}
    opcodes = sorted([*named, *scan.stack_globals])
    resolved: list[GlobalUse] = []
    for offset, call in zip(opcodes, recorder.calls, strict=False):
        use = named.get(offset)
        if use is None:
            resolved.append(GlobalUse(call[0], call[1], offset, "STACK_GLOBAL"))
        elif (use.module, use.name) != call:
            break  # out of step: name nothing rather than the wrong thing
    done = {use.offset for use in resolved}
    scan.globals = sorted([*scan.globals, *resolved], key=lambda use: use.offset)
    scan.unresolved += [
        Unresolved(offset, "STACK_GLOBAL", "the unpickler could not build its names (the pickle "
                   "breaks before them, or they are not strings)")
        for offset in scan.stack_globals if offset not in done]
    scan.unresolved.sort(key=lambda item: item.offset)
    scan.stack_globals = []
