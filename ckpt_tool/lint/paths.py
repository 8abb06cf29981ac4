"""The files ``ckpt lint`` checks: files as given, directories walked for checkpoints."""

from __future__ import annotations

import os

from ckpt_tool.containers.remote import is_url
from ckpt_tool.inputs import holds_checkpoint
from ckpt_tool.lint.names import checkpoint_suffix

_SKIPPED_FOLDERS = frozenset({".git", ".hg", ".svn", "__pycache__"})


def collect_paths(arguments: list[str]) -> list[str]:
    """Files named on the command line are kept as given (a missing one is reported later);
    a directory is walked, symlinked folders not followed, for files named like checkpoints or
    whose bytes are one."""
    paths: list[str] = []
    seen: set[str] = set()
    for argument in arguments:
        found = _walk(argument) if os.path.isdir(argument) else [argument]
        for path in found:
            key = path if is_url(path) else os.path.realpath(path)
            if key not in seen:
                seen.add(key)
                paths.append(path)
    return paths


def _walk(root: str) -> list[str]:
    found = []
    for folder, folders, names in os.walk(root, followlinks=False):
        folders[:] = sorted(name for name in folders if name not in _SKIPPED_FOLDERS)
        for name in sorted(names):
            path = os.path.normpath(os.path.join(folder, name))
            if os.path.isfile(path) and (checkpoint_suffix(name) or holds_checkpoint(path)):
                found.append(path)
    return found
