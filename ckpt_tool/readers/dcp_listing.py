"""Whether a file is a data file of a torch.distributed.checkpoint folder.

Lint asks this of every file it checks; the answer needs the DCP reader only when the file's
folder holds a metadata or safetensors file, so that reader is imported only then.
"""

from __future__ import annotations

import os
import time

from ckpt_tool.containers.remote import is_url

SAFETENSORS_SUFFIX = ".safetensors"
"""torch.distributed.checkpoint._hf_utils.SUFFIX"""


def dcp_folder_owning(path: str) -> str | None:
    """The folder whose DCP metadata names this file as one of its data files, if any (never for
    the metadata file itself, which DCP unpickles)."""
    if is_url(path) or not os.path.isfile(path):
        return None
    folder, name = os.path.split(path)
    names = dcp_names(folder or ".")
    if not names:
        return None
    from ckpt_tool.limits import DEFAULT_LIMITS
    from ckpt_tool.readers.dcp import find_in_folder

    for found in find_in_folder(folder or ".", names, DEFAULT_LIMITS):
        is_metadata = found.metadata is not None and os.path.basename(found.metadata) == name
        if name in found.files and found.metadata is not None and not is_metadata:
            return found.path
    return None


_LISTINGS: dict[str, tuple[int, float, list[str]]] = {}
_SETTLED = 2.0
"""Seconds after a folder's last change past which its modification time is trusted to move on
any later change (file systems stamp it with a coarse clock)."""


def dcp_names(folder: str) -> list[str] | None:
    """The folder's metadata and safetensors names: the only ones that can make it a DCP
    checkpoint. Linting each file of a folder asks for them again; a listing is reused while the
    folder's modification time has not moved since a listing made well after it (linting the
    1,000 files of one folder lists it once, not 1,000 times)."""
    try:
        changed = os.stat(folder).st_mtime_ns
        cached = _LISTINGS.get(folder)
        if cached is not None and cached[0] == changed and cached[1] > changed / 1e9 + _SETTLED:
            return cached[2]
        listed_at = time.time()
        names = sorted(entry for entry in os.listdir(folder)
                       if entry.endswith((".metadata", SAFETENSORS_SUFFIX)))
    except OSError:
        return None
    if len(_LISTINGS) > 256:
        _LISTINGS.clear()
    _LISTINGS[folder] = (changed, listed_at, names)
    return names
