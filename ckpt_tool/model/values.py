"""Turn the non-tensor values of a checkpoint into JSON and into short human text."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ckpt_tool.model.checkpoint import TensorRef
from ckpt_tool.model.dtypes import DType
from ckpt_tool.model.objects import (
    ConfigNode,
    DataRecord,
    Namespace,
    NumpyArray,
    NumpyDType,
    Opaque,
    ScriptObject,
    StorageView,
    is_placeholder_type,
)

_MAX_TEXT = 120
_JSON_INT_BITS = 63
"""Larger ints are written as strings: many JSON readers hold numbers in 64 bits or a double."""
_INT_TEXT_BITS = 3300
"""About 1,000 digits: a larger int is shown by its size (Python refuses to print past 4,300)."""


def int_text(value: int) -> str:
    """An int as text, whatever its size: its digits, or how many it has."""
    if value.bit_length() <= _INT_TEXT_BITS:
        return str(value)
    digits = int(value.bit_length() * math.log10(2)) + 1
    return f"<int of about {digits} digits>"


def to_json(value: Any, depth: int = 0) -> Any:
    """A JSON-safe rendering: numbers and strings as they are, everything else described."""
    if depth > 50:
        return "<too deep>"
    if isinstance(value, int) and not isinstance(value, bool):
        return value if value.bit_length() <= _JSON_INT_BITS else int_text(value)
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, complex):
        return {"real": to_json(value.real), "imag": to_json(value.imag)}
    if isinstance(value, bytes | bytearray):
        return {"bytes": len(value), "hex": bytes(value[:64]).hex()}
    if isinstance(value, Mapping):
        return {str(k): to_json(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=repr) if isinstance(value, set | frozenset) else value
        return [to_json(v, depth + 1) for v in items]
    if isinstance(value, Namespace | DataRecord):
        return {k: to_json(v, depth + 1) for k, v in value.fields.items()}
    if isinstance(value, ConfigNode):
        return to_json(value.plain(), depth + 1)
    if isinstance(value, TensorRef):
        return {"tensor": value.dtype.name, "shape": list(value.shape)}
    return describe(value)


def describe(value: Any) -> str:
    """One line of text for a value (placeholders say what they stand for)."""
    if isinstance(value, NumpyArray):
        dtype = value.dtype.text if value.dtype else "?"
        return f"numpy array {list(value.shape)} {dtype}"
    if isinstance(value, NumpyDType):
        return f"numpy dtype {value.text}"
    if isinstance(value, DType):
        return f"torch.{value.name}"
    if isinstance(value, StorageView):
        return f"storage {value.dtype.name}"
    if isinstance(value, ConfigNode):
        return _clip(safe_repr(value.plain()))
    if isinstance(value, ScriptObject):
        return f"<{value.class_name or 'torch.ScriptObject'} object>"
    if is_placeholder_type(value):
        return f"<class {value.global_name_of()}>"
    if isinstance(value, Opaque):
        if value.args and value.state is None:  # a call: show what it would have called
            args = ", ".join(_clip(safe_repr(arg)) for arg in value.args)
            return _clip(f"{value.global_name}({args})  [not called]")
        return f"<{value.global_name} object>"
    if isinstance(value, slice | range):
        return safe_repr(value)
    return _clip(safe_repr(value))


def safe_repr(value: Any) -> str:
    """``repr``, except that an int too large for Python to print is shown by its size."""
    try:
        return repr(value)
    except ValueError:  # "Exceeds the limit (4300 digits) for integer string conversion"
        if isinstance(value, int):
            return int_text(value)
        if isinstance(value, list | tuple):
            inner = ", ".join(safe_repr(item) for item in value[:20])
            return f"[{inner}{', ...' if len(value) > 20 else ''}]"
        if isinstance(value, dict):
            pairs = list(value.items())[:20]
            return "{" + ", ".join(f"{safe_repr(k)}: {safe_repr(v)}" for k, v in pairs) + "}"
        return f"<{type(value).__name__}>"


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 3] + "..."


def short_text(value: Any) -> str:
    if isinstance(value, str):
        text = value
        return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 3] + "..."
    if isinstance(value, int) and not isinstance(value, bool):
        return int_text(value)
    if isinstance(value, float | bool) or value is None:
        return repr(value)
    return describe(value)
