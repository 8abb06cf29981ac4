"""The one dtype table: torch name, legacy storage class, safetensors code, item size, numpy."""

from __future__ import annotations

import math

from ckpt_tool.model.record import Record


class DType(Record):
    __slots__ = ("name", "itemsize", "storage_class", "safetensors", "numpy", "is_floating",
                 "is_complex", "elements_per_byte")
    name: str
    """torch's name without ``torch.`` (``float32``, ``bfloat16``...)."""
    itemsize: int
    storage_class: str | None
    """Legacy typed storage class (``FloatStorage``); None for dtypes saved untyped."""
    safetensors: str | None
    """safetensors header code; None where safetensors has no equivalent."""
    numpy: str | None
    """numpy (or ml_dtypes) dtype name used to compute on the bytes."""
    is_floating: bool
    is_complex: bool
    elements_per_byte: int
    """2 for ``quint4x2``, 4 for ``quint2x4``: torch packs these elements into bytes, while their
    storages, like every other, count bytes (``itemsize`` is torch's ``element_size()``, 1)."""

    def __init__(self, name: str, itemsize: int, storage_class: str | None = None,
                 safetensors: str | None = None, numpy: str | None = None,
                 is_floating: bool = False, is_complex: bool = False,
                 elements_per_byte: int = 1) -> None:
        self.name = name
        self.itemsize = itemsize
        self.storage_class = storage_class
        self.safetensors = safetensors
        self.numpy = numpy
        self.is_floating = is_floating
        self.is_complex = is_complex
        self.elements_per_byte = elements_per_byte

    def nbytes_of(self, shape: tuple[int, ...]) -> int:
        """Bytes a contiguous tensor of this shape holds. Sub-byte dtypes round each innermost
        row up to whole bytes, as ``get_sub_byte_tensor_size`` in ATen's Quantizer.cpp does."""
        numel = math.prod(shape)
        if self.elements_per_byte == 1 or not shape:
            return numel * self.itemsize
        rows = math.prod(shape[:-1])
        return rows * -(-shape[-1] // self.elements_per_byte) * self.itemsize

    def bytes_for_elements(self, count: int) -> int:
        """Bytes that hold the first ``count`` elements of a storage (rounded up)."""
        return -(-count // self.elements_per_byte) * self.itemsize


DTYPES: tuple[DType, ...] = (
    DType("float64", 8, "DoubleStorage", "F64", "float64", is_floating=True),
    DType("float32", 4, "FloatStorage", "F32", "float32", is_floating=True),
    DType("float16", 2, "HalfStorage", "F16", "float16", is_floating=True),
    DType("bfloat16", 2, "BFloat16Storage", "BF16", "bfloat16", is_floating=True),
    DType("float8_e4m3fn", 1, None, "F8_E4M3", "float8_e4m3fn", is_floating=True),
    DType("float8_e5m2", 1, None, "F8_E5M2", "float8_e5m2", is_floating=True),
    DType("float8_e4m3fnuz", 1, None, "F8_E4M3FNUZ", "float8_e4m3fnuz", is_floating=True),
    DType("float8_e5m2fnuz", 1, None, "F8_E5M2FNUZ", "float8_e5m2fnuz", is_floating=True),
    DType("float8_e8m0fnu", 1, None, "F8_E8M0", "float8_e8m0fnu", is_floating=True),
    DType("float4_e2m1fn_x2", 1, None, None, None, is_floating=True),
    DType("int64", 8, "LongStorage", "I64", "int64"),
    DType("int32", 4, "IntStorage", "I32", "int32"),
    DType("int16", 2, "ShortStorage", "I16", "int16"),
    DType("int8", 1, "CharStorage", "I8", "int8"),
    DType("uint64", 8, None, "U64", "uint64"),
    DType("uint32", 4, None, "U32", "uint32"),
    DType("uint16", 2, None, "U16", "uint16"),
    DType("uint8", 1, "ByteStorage", "U8", "uint8"),
    DType("bool", 1, "BoolStorage", "BOOL", "bool"),
    DType("complex128", 16, "ComplexDoubleStorage", None, "complex128", is_complex=True),
    DType("complex64", 8, "ComplexFloatStorage", "C64", "complex64", is_complex=True),
    DType("complex32", 4, None, None, None, is_complex=True),
    DType("qint8", 1, "QInt8Storage", None, "int8"),
    DType("quint8", 1, "QUInt8Storage", None, "uint8"),
    DType("qint32", 4, "QInt32Storage", None, "int32"),
    DType("quint4x2", 1, "QUInt4x2Storage", None, "uint8", elements_per_byte=2),
    DType("quint2x4", 1, "QUInt2x4Storage", None, "uint8", elements_per_byte=4),
    DType("bits8", 1),
    DType("bits16", 2),
    DType("bits1x8", 1),
    DType("bits2x4", 1),
    DType("bits4x2", 1),
    *(DType(f"uint{n}", 1) for n in range(1, 8)),
    *(DType(f"int{n}", 1) for n in range(1, 8)),
)

BY_NAME: dict[str, DType] = {d.name: d for d in DTYPES}
BY_STORAGE_CLASS: dict[str, DType] = {d.storage_class: d for d in DTYPES if d.storage_class}
BY_SAFETENSORS: dict[str, DType] = {d.safetensors: d for d in DTYPES if d.safetensors}
# Spellings older safetensors headers use for the same codes.
BY_SAFETENSORS.setdefault("F8_E4M3FN", BY_NAME["float8_e4m3fn"])
UINT8 = BY_NAME["uint8"]


def dtype_named(name: str) -> DType:
    """Look a torch dtype up by name, with or without ``torch.``."""
    return BY_NAME[name.removeprefix("torch.")]


def numpy_dtype(dtype: DType, byteorder: str = "little"):  # -> numpy.dtype
    """The numpy dtype for computing on a tensor's bytes (imports numpy; ml_dtypes if needed)."""
    import numpy as np

    if dtype.numpy is None:
        raise ValueError(f"no numpy equivalent for {dtype.name}")
    try:
        result = np.dtype(dtype.numpy)
    except TypeError:
        import ml_dtypes

        result = np.dtype(getattr(ml_dtypes, dtype.numpy))
    if dtype.itemsize > 1 and result.kind in "iufc":
        result = result.newbyteorder("<" if byteorder == "little" else ">")
    return result
