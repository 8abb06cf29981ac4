"""Folders and files a walk passes over: the default excludes, ``--exclude``/``--extend-exclude``
patterns and the ``exclude`` configuration keys.

A pattern without ``/`` matches a file or folder name at any depth (``.venv``, ``*.tmp``,
``.*_cache``); a pattern with ``/`` matches the path relative to the configuration's folder (the
working directory when there is none), ``*`` crossing folders. A trailing ``/`` is ignored.
"""

from __future__ import annotations

import fnmatch
import os

from ckpt_tool.model.record import Record

DEFAULT_EXCLUDES = (
    ".bzr", ".direnv", ".eggs", ".git", ".git-rewrite", ".hg", ".ipynb_checkpoints", ".nox",
    ".pants.d", ".pytype", ".svn", ".tox", ".venv", "venv", "__pypackages__", "__pycache__",
    ".*_cache", "node_modules", "site-packages", "dist-packages",
)
"""Version control, virtual environments, caches and installed packages: folders that hold
other people's files (a venv holds torch's own test checkpoints), not the project's."""

ENVIRONMENT_MARKERS = ("pyvenv.cfg", "conda-meta")
"""A folder holding one of these is a Python environment, whatever its name."""


class Excludes(Record):
    __slots__ = ("patterns", "base")
    patterns: tuple[str, ...]
    base: str
    """Folder that patterns with a ``/`` are relative to."""

    def __init__(self, patterns: tuple[str, ...] = DEFAULT_EXCLUDES, base: str = ".") -> None:
        self.patterns = patterns
        self.base = base

    def match(self, path: str) -> str | None:
        """The pattern that excludes ``path`` itself (its name or its relative path), or None."""
        name = os.path.basename(os.path.normpath(path))
        relative = _relative(path, self.base)
        for pattern in self.patterns:
            bare = pattern.rstrip("/")
            if "/" in bare:
                if fnmatch.fnmatchcase(relative, bare.removeprefix("./")):
                    return pattern
            elif fnmatch.fnmatchcase(name, bare):
                return pattern
        return None

    def match_any_part(self, path: str) -> str | None:
        """The pattern that excludes ``path`` or a folder above it (for files named on the
        command line with ``--force-exclude``)."""
        current = os.path.normpath(path)
        while current and current not in (".", os.sep):
            found = self.match(current)
            if found:
                return found
            parent = os.path.dirname(current)
            if parent == current:
                break
            current = parent
        return None


def is_environment(folder: str) -> bool:
    return any(os.path.lexists(os.path.join(folder, marker)) for marker in ENVIRONMENT_MARKERS)


def _relative(path: str, base: str) -> str:
    relative = os.path.relpath(os.path.abspath(path), os.path.abspath(base))
    return relative.replace(os.sep, "/")
