"""The files ``ckpt lint`` checks: every file torch.load could read as a checkpoint or pickle,
whatever its name, and which others it passed over and why.

A file is checked when its name is a checkpoint's (``.pt``, ``.pkl``, ...) or when its bytes are
one: a zip or tar archive, a torch legacy stream, a safetensors header, or a pickle with or
without a protocol header (torch.load unpickles any file that is neither a zip nor a tar). Files
given by name are checked on the same terms, so that a pre-commit hook that passes every file
checks exactly what ``ckpt lint DIR`` would. Folders are walked as every command walks them
(``ckpt_tool.discovery.walk``): default excludes, ``--exclude`` patterns, ``.gitignore``.
"""

from __future__ import annotations

import os

from ckpt_tool.containers.remote import NO_OPTIONS, RemoteOptions, is_url
from ckpt_tool.discovery.walk import DEFAULT_RULES, Passed, WalkRules, named_path_exclusion
from ckpt_tool.discovery.walk import walk_folders as _walk_folders
from ckpt_tool.errors import CkptError
from ckpt_tool.inputs import holds_checkpoint
from ckpt_tool.lint.names import checkpoint_suffix
from ckpt_tool.model.record import Record


class Selection(Record):
    __slots__ = ("files", "skipped", "excluded", "sizes")
    __hash__ = None  # type: ignore[assignment]  # mutable
    files: list[str]
    skipped: list[tuple[str, str]]
    """(path, why) of the files looked at and passed over (not checkpoints)."""
    excluded: list[Passed]
    """Files and folders the walk did not enter (excludes, .gitignore, environments)."""
    sizes: dict[str, int]
    """Sizes of remote files, from the listing of the folder they were found in."""

    def __init__(self, files: list[str] | None = None, skipped: list[tuple[str, str]] | None = None,
                 excluded: list[Passed] | None = None, sizes: dict[str, int] | None = None) -> None:
        self.files = [] if files is None else files
        self.skipped = [] if skipped is None else skipped
        self.excluded = [] if excluded is None else excluded
        self.sizes = {} if sizes is None else sizes


def collect_paths(arguments: list[str], rules: WalkRules = DEFAULT_RULES,
                  remote: RemoteOptions = NO_OPTIONS) -> Selection:
    """Files named on the command line are checked if they may be checkpoints (a missing one is
    reported later); a directory is walked, symlinked folders not followed; a remote folder or
    repository URL is listed (its files chosen by name)."""
    selection = Selection()
    seen: set[str] = set()
    for argument in arguments:
        if is_url(argument):
            found = _list_url(argument, remote, selection)
        elif os.path.isdir(argument):
            found = _walk(argument, rules, selection.excluded)
        else:
            excluded = None if is_url(argument) else named_path_exclusion(argument, rules)
            if excluded:
                selection.excluded.append(Passed(argument, excluded, False))
                continue
            found = [argument]
        for path in found:
            key = path if is_url(path) else os.path.realpath(path)
            if key in seen:
                continue
            seen.add(key)
            reason = _skip_reason(path)
            if reason is None:
                selection.files.append(path)
            else:
                selection.skipped.append((path, reason))
    return selection


def _list_url(url: str, remote: RemoteOptions, selection: Selection) -> list[str]:
    """The files a URL stands for; a folder that cannot be listed is checked as given (and
    reported unreadable)."""
    from ckpt_tool.containers.remote_folders import expand_url

    listing = expand_url(url, remote)
    selection.skipped += [(path, "not named as a checkpoint (remote files are chosen by name)")
                          for path in listing.skipped]
    for found in listing.files:
        if found.size is not None:
            selection.sizes[found.url] = found.size
    return [found.url for found in listing.files]


def _walk(root: str, rules: WalkRules, excluded: list[Passed]) -> list[str]:
    return [os.path.normpath(os.path.join(folder, name))
            for folder, names, _ in _walk_folders(root, rules, excluded) for name in names]


def _skip_reason(path: str) -> str | None:
    """None when lint checks the file; else why not."""
    if is_url(path) or checkpoint_suffix(path) or not os.path.lexists(path):
        return None  # a missing or unreadable named file is reported by lint itself
    if os.path.islink(path) and not os.path.exists(path):
        return "a broken symbolic link"
    if not os.path.isfile(path):
        return "not a regular file"
    if holds_checkpoint(path) or _holds_objects_array(path) or _names_code_as_a_pickle(path):
        return None
    return "neither named nor shaped like a checkpoint or pickle"


def _holds_objects_array(path: str) -> bool:
    """A numpy ``.npy`` of objects: a pickle behind a header (``numpy.load`` unpickles it)."""
    from ckpt_tool.containers import npy
    from ckpt_tool.containers.source import FileSource

    try:
        with FileSource(path) as source:
            return npy.pickle_start(source.read_at, source.size) is not None
    except (OSError, ValueError, CkptError):
        return False


def _names_code_as_a_pickle(path: str) -> bool:
    """A broken pickle that names code before it breaks still runs it under torch.load."""
    from ckpt_tool.lint.facts import is_unmarked_pickle

    return is_unmarked_pickle(path)
