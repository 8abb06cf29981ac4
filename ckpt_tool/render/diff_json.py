"""The JSON document of ``ckpt diff --json`` (schema 2, documented in the README), as a plain
dict. Schema 2: ``equal`` is null when values were not compared and nothing else differed (it was
true in schema 1); ``verdict``, ``compared``, the aliases and file counts were added."""

from __future__ import annotations

import math
from typing import Any

from ckpt_tool import __version__
from ckpt_tool.diff import DiffResult, TensorDiff

SCHEMA = 2


def _finite(value: float | None) -> float | str | None:
    return value if value is None or math.isfinite(value) else str(value)


def tensor_json(diff: TensorDiff) -> dict[str, Any]:
    return {
        "name": diff.name, "dtype_a": diff.a.dtype.name, "dtype_b": diff.b.dtype.name,
        "shape_a": list(diff.a.shape), "shape_b": list(diff.b.shape),
        "identical": diff.identical, "max_abs": _finite(diff.max_abs),
        "max_rel": _finite(diff.max_rel),
        "allclose": diff.allclose, "note": diff.note,
    }


def diff_document(path_a: str, path_b: str, result: DiffResult) -> dict[str, Any]:
    verdict = result.verdict
    return {
        "schema": SCHEMA, "ckpt_version": __version__, "a": path_a, "b": path_b,
        "compared": "values" if result.values_compared else "layout",
        "verdict": verdict,
        "equal": None if verdict == "same-layout" else verdict == "equal",
        "mapping": result.mapping, "values_compared": result.values_compared,
        "files_a": result.files_a, "files_b": result.files_b,
        "only_a": result.only_a, "only_b": result.only_b,
        "outside_a": result.outside_a, "outside_b": result.outside_b,
        "aliases_a": result.aliases_a, "aliases_b": result.aliases_b,
        "tensors": [tensor_json(d) for d in result.tensors],
        "metadata": {
            "changed": [{"key": k, "a": a, "b": b} for k, a, b in result.metadata_changed],
            "only_a": result.metadata_only_a, "only_b": result.metadata_only_b,
        },
    }
