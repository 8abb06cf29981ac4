"""``expand_sources``: the files to check, from paths, folders and URLs, as rows for an
engine's ``from_items``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ckpt_tool.api.results import as_path, as_remote


def expand_sources(sources: Iterable[Any],
                   storage_options: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """``[{"path", "size", "error"}]``: each file as given; each local folder walked as the
    commands walk it (default excludes and .gitignore, no configuration read; files kept by
    their content); each remote folder or repository URL (``s3://bucket/run/``,
    ``hf://org/repo@rev``) listed, its files chosen by checkpoint extension, with the sizes the
    listing gives (pass ``size`` on to ``lint_one``/``inspect_one`` to save a request). A model
    saved in several files is one row: its folder or its index.
    ``error`` says why a source gave no file (an empty folder, a URL that cannot be listed)."""
    from ckpt_tool.inputs import expand_inputs

    items = expand_inputs([as_path(source) for source in sources],
                          remote=as_remote(storage_options, None))
    return [{"path": item.path, "size": item.size, "error": item.error} for item in items]
