"""``.gitignore`` files, read as git reads them, for folder walks inside a git work tree.

Patterns follow gitignore(5): ``#`` comments, ``!`` negation, a trailing ``/`` for folders only,
a pattern with a ``/`` before its end anchored to its file's folder (otherwise it matches a name at
any depth), ``*``, ``?``, ``[...]`` and ``**``. Deeper files override shallower ones and, within a
file, the last matching line wins; ``.git/info/exclude`` ranks below the top ``.gitignore``.
A file git tracks is never ignored (a checkpoint added with ``git add -f`` despite ``*.pt`` in
``.gitignore`` is still in the repository, and is still checked): ``git ls-files`` is asked once,
the first time a pattern ignores something.
"""

from __future__ import annotations

import os
import re
import subprocess
from bisect import bisect_left

from ckpt_tool.model.record import Record


class Pattern(Record):
    __slots__ = ("text", "regex", "negated", "folders_only")
    text: str
    regex: re.Pattern[str]
    negated: bool
    folders_only: bool

    def __init__(self, text: str, regex: re.Pattern[str], negated: bool,
                 folders_only: bool) -> None:
        self.text = text
        self.regex = regex
        self.negated = negated
        self.folders_only = folders_only


def parse(text: str) -> list[Pattern]:
    patterns = []
    for raw in text.splitlines():
        line = _strip_trailing_spaces(raw)
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        if negated or line.startswith(("\\!", "\\#")):
            line = line[1:]
        folders_only = line.endswith("/")
        line = line.rstrip("/")
        if not line:
            continue
        patterns.append(Pattern(raw.strip(), re.compile(_translate(line)), negated, folders_only))
    return patterns


def _strip_trailing_spaces(line: str) -> str:
    stripped = line.rstrip(" ")
    if stripped.endswith("\\") and len(stripped) < len(line):
        return stripped + " "  # "foo\ " keeps its escaped space
    return stripped


def _translate(pattern: str) -> str:
    """A regex over the path relative to the .gitignore's folder, ``/``-separated."""
    anchored = "/" in pattern
    pattern = pattern.removeprefix("/")
    body, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i) and (i == 0 or pattern[i - 1] == "/"):
            body.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("/**", i) and i + 3 == len(pattern):
            body.append("/.*")
            i += 3
        elif pattern[i] == "*":
            while i < len(pattern) and pattern[i] == "*":
                i += 1
            body.append("[^/]*")
        elif pattern[i] == "?":
            body.append("[^/]")
            i += 1
        elif pattern[i] == "[":
            end = pattern.find("]", i + 2)
            if end < 0:
                body.append(re.escape("["))
                i += 1
                continue
            inside = pattern[i + 1:end]
            if inside.startswith("!"):
                inside = "^" + inside[1:]
            body.append("[" + inside.replace("\\", "\\\\") + "]")
            i = end + 1
        elif pattern[i] == "\\" and i + 1 < len(pattern):
            body.append(re.escape(pattern[i + 1]))
            i += 2
        else:
            body.append(re.escape(pattern[i]))
            i += 1
    prefix = "" if anchored else "(?:.*/)?"
    return "^" + prefix + "".join(body) + "$"


def find_repository(folder: str) -> str | None:
    """The work tree root above ``folder`` (the nearest folder holding ``.git``)."""
    current = os.path.abspath(folder)
    while True:
        if os.path.lexists(os.path.join(current, ".git")):
            return current
        parent = os.path.dirname(current)
        if parent == current:
            return None
        current = parent


class Tracked:
    """The files git tracks in one work tree, asked for only when needed."""

    def __init__(self, repository: str) -> None:
        self.repository = repository
        self._paths: list[str] | None = None

    def _load(self) -> list[str]:
        if self._paths is None:
            try:
                done = subprocess.run(["git", "-C", self.repository, "ls-files", "-z"],
                                      capture_output=True, check=False, timeout=60)
                names = done.stdout.decode("utf-8", "surrogateescape").split("\0")
                self._paths = sorted(name for name in names if name) if done.returncode == 0 \
                    else []
            except (OSError, subprocess.SubprocessError):
                self._paths = []  # no git: nothing is known to be tracked
        return self._paths

    def file(self, relative: str) -> bool:
        paths = self._load()
        index = bisect_left(paths, relative)
        return index < len(paths) and paths[index] == relative

    def inside(self, relative_folder: str) -> bool:
        """A tracked file lies somewhere below this folder."""
        paths = self._load()
        prefix = relative_folder + "/"
        index = bisect_left(paths, prefix)
        return index < len(paths) and paths[index].startswith(prefix)


class Ignores:
    """The .gitignore patterns in force in one folder of a walk, and the repository around it."""

    def __init__(self, repository: str, levels: list[tuple[str, list[Pattern]]],
                 tracked: Tracked) -> None:
        self.repository = repository
        self.levels = levels
        """(folder relative to the repository, its patterns), shallowest first."""
        self.tracked = tracked

    @classmethod
    def above(cls, folder: str) -> Ignores | None:
        """The patterns in force in ``folder``: every .gitignore from the repository's root down
        to it, and .git/info/exclude. None outside a git work tree."""
        repository = find_repository(folder)
        if repository is None:
            return None
        levels = [("", _read(os.path.join(repository, ".git", "info", "exclude")))]
        relative = _relative(repository, os.path.abspath(folder))
        parts = relative.split("/") if relative else []
        for depth in range(len(parts) + 1):
            sub = "/".join(parts[:depth])
            levels.append((sub, _read(os.path.join(repository, sub, ".gitignore"))))
        return cls(repository, [level for level in levels if level[1]], Tracked(repository))

    def descend(self, folder: str) -> Ignores:
        """The patterns in force in a sub-folder (its own .gitignore added)."""
        patterns = _read(os.path.join(folder, ".gitignore"))
        if not patterns:
            return self
        relative = _relative(self.repository, os.path.abspath(folder))
        return Ignores(self.repository, [*self.levels, (relative, patterns)], self.tracked)

    def match(self, path: str, is_folder: bool) -> Pattern | None:
        """The pattern that ignores ``path``, or None (not ignored, or re-included, or tracked)."""
        relative = _relative(self.repository, os.path.abspath(path))
        for base, patterns in reversed(self.levels):
            if base and not relative.startswith(base + "/"):
                continue
            inner = relative[len(base) + 1:] if base else relative
            for pattern in reversed(patterns):
                if pattern.folders_only and not is_folder:
                    continue
                if pattern.regex.match(inner):
                    if pattern.negated:
                        return None
                    return None if self._tracked(relative, is_folder) else pattern
        return None

    def _tracked(self, relative: str, is_folder: bool) -> bool:
        return self.tracked.inside(relative) if is_folder else self.tracked.file(relative)

    def tracked_file(self, path: str) -> bool:
        return self.tracked.file(_relative(self.repository, os.path.abspath(path)))


def _relative(repository: str, path: str) -> str:
    relative = os.path.relpath(path, repository).replace(os.sep, "/")
    return "" if relative == "." else relative


def _read(path: str) -> list[Pattern]:
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            return parse(f.read())
    except OSError:
        return []
