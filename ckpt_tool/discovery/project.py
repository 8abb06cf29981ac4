"""``[tool.ckpt]`` in the nearest pyproject.toml: the walk settings every command shares.

The nearest pyproject.toml with a ``[tool.ckpt]`` table, looking up from the working directory,
is the project's configuration; ``[tool.ckpt.lint]`` inside it holds lint's rules
(``ckpt_tool.lint.config``). Walk keys: ``exclude`` (replaces the default excludes),
``extend-exclude`` (adds to them), ``respect-gitignore`` (default true) and ``force-exclude``
(apply the excludes to files named on the command line too, as the pre-commit hook does).
"""

from __future__ import annotations

import os
from typing import Any

from ckpt_tool.discovery.excludes import DEFAULT_EXCLUDES, Excludes
from ckpt_tool.discovery.walk import WalkRules
from ckpt_tool.errors import ConfigError
from ckpt_tool.model.record import Record

WALK_KEYS = ("exclude", "extend-exclude", "respect-gitignore", "force-exclude")
KNOWN_KEYS = (*WALK_KEYS, "lint")


class Project(Record):
    __slots__ = ("path", "table", "root")
    path: str | None
    """The pyproject.toml read, if any."""
    table: dict[str, Any]
    """Its ``[tool.ckpt]`` table."""
    root: str
    """The folder relative patterns are read from: the pyproject's, or the working directory."""

    def __init__(self, path: str | None = None, table: dict[str, Any] | None = None,
                 root: str = ".") -> None:
        self.path = path
        self.table = {} if table is None else table
        self.root = root


class WalkFlags(Record):
    """The command line's walk options (None: not given)."""

    __slots__ = ("exclude", "extend_exclude", "respect_gitignore", "force_exclude")
    exclude: tuple[str, ...] | None
    extend_exclude: tuple[str, ...]
    respect_gitignore: bool | None
    force_exclude: bool | None

    def __init__(self, exclude: tuple[str, ...] | None = None, extend_exclude: tuple[str, ...] = (),
                 respect_gitignore: bool | None = None, force_exclude: bool | None = None) -> None:
        self.exclude = exclude
        self.extend_exclude = extend_exclude
        self.respect_gitignore = respect_gitignore
        self.force_exclude = force_exclude


def find_project(start: str = ".") -> Project:
    directory = os.path.abspath(start)
    while True:
        candidate = os.path.join(directory, "pyproject.toml")
        if os.path.isfile(candidate) and _may_configure_ckpt(candidate):
            table = read_toml(candidate).get("tool", {}).get("ckpt")
            if table is not None:
                if not isinstance(table, dict):
                    raise ConfigError(f"{candidate}: [tool.ckpt] must be a table")
                unknown = sorted(set(table) - set(KNOWN_KEYS))
                if unknown:
                    raise ConfigError(f"{candidate}: unknown key(s) {', '.join(unknown)} in "
                                      f"[tool.ckpt] (known: {', '.join(KNOWN_KEYS)})")
                return Project(candidate, table, directory)
        parent = os.path.dirname(directory)
        if parent == directory:
            return Project(root=os.path.abspath(start))
        directory = parent


def _may_configure_ckpt(path: str) -> bool:
    """Whether the file names ckpt at all: most projects' pyproject.toml does not, and then
    neither ``tomllib`` nor the parse is paid on every run (a pre-commit hook runs ckpt once per
    batch of files). A key spelled with escapes is missed: ckpt then keeps its defaults."""
    try:
        with open(path, "rb") as file:
            return b"ckpt" in file.read()
    except OSError:
        return True  # read_toml reports it


def read_toml(path: str) -> dict[str, Any]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ModuleNotFoundError:
            raise ConfigError(
                f"{path}: reading it needs Python 3.11, or `pip install tomli`") from None
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: {exc}") from None


NO_FLAGS = WalkFlags()


def walk_rules(project: Project, flags: WalkFlags = NO_FLAGS,
               extra: tuple[str, ...] = ()) -> WalkRules:
    """The walk for a run: the command line wins over the configuration; ``extra`` are a
    command's own excludes (``[tool.ckpt.lint] exclude``)."""
    where = project.path or "configuration"
    table = project.table
    base = (flags.exclude if flags.exclude is not None
            else tuple(strings(table, "exclude", where)) if "exclude" in table
            else DEFAULT_EXCLUDES)
    patterns = (*base, *strings(table, "extend-exclude", where), *flags.extend_exclude, *extra)
    return WalkRules(
        Excludes(patterns, project.root),
        _flag(flags.respect_gitignore, table, "respect-gitignore", where, True),
        _flag(flags.force_exclude, table, "force-exclude", where, False))


def strings(table: dict[str, Any], key: str, where: str) -> list[str]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ConfigError(f"{where}: {key} must be a list of strings")
    return value


def _flag(given: bool | None, table: dict[str, Any], key: str, where: str,
          default: bool) -> bool:
    if given is not None:
        return given
    value = table.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"{where}: {key} must be true or false")
    return value
