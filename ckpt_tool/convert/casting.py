"""Floating-point casts with numpy and ml_dtypes that give torch's ``Tensor.to(dtype)`` values.

Both libraries round finite values to nearest even. torch's bfloat16 and float16 constructors take
a float (c10/util/BFloat16.h, Half.h), so a float64 is rounded to float32 first; doing the same
here gives torch's bits where a direct cast would round differently. NaN stays NaN with its sign,
but its payload bits are not specified: torch's own differ between its scalar and vectorized paths
(0x7FC0 and 0xFFFF for bfloat16).
"""

from __future__ import annotations

from typing import Any

from ckpt_tool.model.dtypes import DType, numpy_dtype


def cast_array(values: Any, source: DType, target: DType) -> Any:
    """``values`` (a numpy array of ``source``) as ``target``: bfloat16, float16 or float32."""
    import numpy as np

    if source is target:
        return values
    with np.errstate(over="ignore", invalid="ignore"):
        as_float = values.astype(np.float32)
        if target.name == "float32":
            return as_float
        return as_float.astype(numpy_dtype(target))
