"""ckpt as a library: one call per file, plain data back.

    from ckpt_tool.api import inspect_one, lint_one, convert_one

    result = lint_one("s3://bucket/run/model.pt", select="ALL", storage_options={"anon": True})
    if result["exit_code"]:
        print(result["error"] or result["findings"])

Each function takes a path or URL and keyword options (limits, rule selection, allowed globals,
fsspec ``storage_options``) and returns a dict of JSON types: the document the command's JSON
output gives for that one file, with ``path``, ``exit_code`` and ``error`` added (see
``ckpt_tool.api.results``). Nothing is printed, read from configuration (unless asked), kept
between calls, or raised: one bad file never fails a batch. Results pickle, so they cross
process boundaries (Ray, Dask, Spark, multiprocessing) as they are.

``expand_sources`` turns paths, folders and remote folder or repository URLs into the files to
check, with sizes when a listing gave them.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Limits", "convert_one", "expand_sources", "inspect_one", "lint_one"]

_HOMES = {"convert_one": "ckpt_tool.api.convert", "inspect_one": "ckpt_tool.api.inspect",
          "lint_one": "ckpt_tool.api.lint", "expand_sources": "ckpt_tool.api.sources",
          "Limits": "ckpt_tool.limits"}


def __getattr__(name: str) -> Any:
    """Each function is imported when first asked for: ``lint_one`` does not load convert."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'ckpt_tool.api' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
