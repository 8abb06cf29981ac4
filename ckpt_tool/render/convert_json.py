"""The JSON of ``ckpt convert --json`` (schema 1, documented in the README), as plain dicts that
the CLI prints and the Python API returns."""

from __future__ import annotations

from typing import Any

from ckpt_tool import __version__
from ckpt_tool.convert.options import ConvertResult

SCHEMA = 1


def result_json(result: ConvertResult) -> dict[str, Any]:
    """One source: what was written (``outputs``: the files, an index last when sharded), how,
    and what it held; or ``error``."""
    return {
        "source": result.source,
        "outputs": list(result.outputs),
        "action": result.action.value if result.action is not None else None,
        "tensors": result.tensors,
        "bytes_written": result.bytes_written,
        "root": result.root,
        "notes": list(result.notes),
        "error": result.error,
    }


def convert_document(results: list[ConvertResult]) -> dict[str, Any]:
    converted = [result for result in results if result.ok]
    return {
        "schema": SCHEMA,
        "ckpt_version": __version__,
        "files": [result_json(result) for result in results],
        "summary": {
            "files": len(results),
            "converted": len(converted),
            "failed": len(results) - len(converted),
            "bytes_written": sum(result.bytes_written for result in converted),
        },
    }
