"""Walk a folder the way every command does: sorted, symlinked folders not followed (a link loop
cannot trap it), excluded folders not entered, ``.gitignore`` honoured inside a git work tree.

What was passed over is recorded with the reason, for ``--show-files`` and the summaries.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

from ckpt_tool.discovery.excludes import Excludes, is_environment
from ckpt_tool.model.record import Record

if TYPE_CHECKING:
    from ckpt_tool.discovery.gitignore import Ignores


class WalkRules(Record):
    __slots__ = ("excludes", "respect_gitignore", "force_exclude")
    excludes: Excludes
    respect_gitignore: bool
    force_exclude: bool
    """Apply the excludes to paths named on the command line too (pre-commit passes every
    staged file by name)."""

    def __init__(self, excludes: Excludes | None = None, respect_gitignore: bool = True,
                 force_exclude: bool = False) -> None:
        self.excludes = Excludes() if excludes is None else excludes
        self.respect_gitignore = respect_gitignore
        self.force_exclude = force_exclude


DEFAULT_RULES = WalkRules()


GITIGNORED = "ignored by .gitignore"


class Passed(Record):
    """A file or folder a walk did not look into, and why."""

    __slots__ = ("path", "reason", "is_folder")
    __hash__ = None  # type: ignore[assignment]  # mutable
    path: str
    reason: str
    is_folder: bool

    def __init__(self, path: str, reason: str, is_folder: bool) -> None:
        self.path = path
        self.reason = reason
        self.is_folder = is_folder

    @property
    def gitignored(self) -> bool:
        return self.reason.startswith(GITIGNORED)


def gitignore_hint(passed: list[Passed]) -> str:
    """`` (N paths ignored by .gitignore: --no-respect-gitignore reads them)``, or nothing."""
    count = sum(1 for item in passed if item.gitignored)
    if not count:
        return ""
    return (f" ({count} {'path' if count == 1 else 'paths'} ignored by .gitignore: "
            "--no-respect-gitignore reads them)")


def walk_folders(root: str, rules: WalkRules,
                 passed: list[Passed]) -> Iterator[tuple[str, list[str], list[str]]]:
    """``(folder, file names, subfolder names)`` for ``root`` and every folder below it that is
    not excluded; names sorted and already filtered. As with ``os.walk``, the caller may remove
    subfolders from the list to keep the walk out of them. ``root`` itself is never excluded."""
    from ckpt_tool.discovery.gitignore import Ignores  # only a walk reads .gitignore files

    ignores = Ignores.above(root) if rules.respect_gitignore else None
    stack: list[tuple[str, Ignores | None]] = [(root, ignores)]
    while stack:
        folder, ignores = stack.pop()
        if ignores is not None and folder != root:
            ignores = ignores.descend(folder)
        try:
            entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
        except OSError as exc:
            passed.append(Passed(folder, f"cannot be listed: {exc.strerror or exc}", True))
            continue
        names: list[str] = []
        folders: list[str] = []
        for entry in entries:
            path = os.path.join(folder, entry.name)
            is_folder = entry.is_dir(follow_symlinks=False)
            if not is_folder and entry.is_symlink() and os.path.isdir(path):
                passed.append(Passed(os.path.normpath(path), "a symlinked folder (not followed)",
                                     True))
                continue
            reason = _exclusion(path, is_folder, rules, ignores)
            if reason is not None:
                passed.append(Passed(os.path.normpath(path), reason, is_folder))
            elif is_folder:
                folders.append(path)
            else:
                names.append(entry.name)
        subfolders = [os.path.basename(path) for path in folders]
        yield folder, names, subfolders
        stack += [(os.path.join(folder, name), ignores) for name in reversed(subfolders)]


def _exclusion(path: str, is_folder: bool, rules: WalkRules,
               ignores: Ignores | None) -> str | None:
    pattern = rules.excludes.match(path)
    if pattern is not None:
        return f"excluded by {pattern!r}"
    if is_folder and is_environment(path):
        return "a Python environment"
    if ignores is not None:
        ignored = ignores.match(path, is_folder)
        if ignored is not None:
            return f"{GITIGNORED} ({ignored.text!r})"
    return None


def named_path_exclusion(path: str, rules: WalkRules) -> str | None:
    """Why a path named on the command line is left out: only with ``--force-exclude``."""
    if not rules.force_exclude:
        return None
    pattern = rules.excludes.match_any_part(path)
    return f"excluded by {pattern!r} (--force-exclude)" if pattern else None
