"""``ckpt lint --fix``: rename a ``*.pth`` checkpoint to ``*.pt`` (CKPT001's fix).

A tracked file is renamed with ``git mv`` so the rename is staged; the target is never
overwritten.
"""

from __future__ import annotations

import os
import subprocess

from ckpt_tool.model.record import Record


class Rename(Record):
    __slots__ = ("source", "target", "done", "via_git", "reason")
    source: str
    target: str
    done: bool
    via_git: bool
    reason: str | None
    """Why the file was not renamed."""

    def __init__(self, source: str, target: str, done: bool, via_git: bool = False,
                 reason: str | None = None) -> None:
        self.source = source
        self.target = target
        self.done = done
        self.via_git = via_git
        self.reason = reason

    def __str__(self) -> str:
        if self.done:
            how = " (git mv)" if self.via_git else ""
            return f"renamed {self.source} -> {self.target}{how}"
        return f"not renamed {self.source}: {self.reason}"


def pt_name(path: str) -> str:
    assert path.endswith(".pth")
    return path[: -len(".pth")] + ".pt"


def _git(folder: str, *args: str) -> subprocess.CompletedProcess[str] | None:
    try:
        # --literal-pathspecs: a name such as model[1].pth is a file, not a pattern.
        return subprocess.run(["git", "-C", folder or ".", "--literal-pathspecs", *args],
                              capture_output=True, text=True, check=False)
    except OSError:  # no git
        return None


def is_tracked(path: str) -> bool:
    folder, name = os.path.split(path)
    done = _git(folder, "ls-files", "--error-unmatch", "--", name)
    return done is not None and done.returncode == 0


def rename_pth(path: str) -> Rename:
    target = pt_name(path)
    if os.path.lexists(target):
        return Rename(path, target, False, reason=f"{target} already exists")
    if is_tracked(path):
        folder, name = os.path.split(path)
        done = _git(folder, "mv", "--", name, os.path.basename(target))
        if done is None or done.returncode != 0:
            error = done.stderr.strip() if done is not None else "git is not available"
            return Rename(path, target, False, True, f"git mv failed: {error}")
        return Rename(path, target, True, True)
    try:
        os.rename(path, target)
    except OSError as exc:
        return Rename(path, target, False, reason=exc.strerror or str(exc))
    return Rename(path, target, True)
