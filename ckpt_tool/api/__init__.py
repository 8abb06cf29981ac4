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

from ckpt_tool.api.convert import convert_one
from ckpt_tool.api.inspect import inspect_one
from ckpt_tool.api.lint import lint_one
from ckpt_tool.api.sources import expand_sources
from ckpt_tool.limits import Limits

__all__ = ["Limits", "convert_one", "expand_sources", "inspect_one", "lint_one"]
