"""``[tool.ckpt.lint]`` in the project's pyproject.toml, merged with the command line.

The project's configuration is the nearest pyproject.toml with a ``[tool.ckpt]`` table, looking
up from the working directory (``ckpt_tool.discovery.project``). Lint's keys: ``select`` and
``ignore`` (codes, code prefixes, slugs or ``ALL``),
``per-file-ignores`` (glob -> codes, globs relative to the pyproject.toml's folder; a glob without
``/`` also matches the file name) and ``allowed-globals`` (extra globals to accept, ``pkg.Class``
or ``pkg.module.*``) and ``exclude`` (patterns lint alone passes over, besides the project's
walk excludes). Command-line flags win: ``--select`` replaces the file's ``select`` and
re-enables codes the file ignores, ``--ignore`` drops codes whatever the file says.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterable
from typing import Any

from ckpt_tool.discovery.project import Project, find_project, strings
from ckpt_tool.errors import ConfigError
from ckpt_tool.lint.findings import BY_SLUG, RULES
from ckpt_tool.lint.policy import AllowedGlobals
from ckpt_tool.model.record import Record

DEFAULT_CODES = frozenset(code for code, rule in RULES.items() if rule.default)
_KEYS = ("select", "ignore", "per-file-ignores", "allowed-globals", "exclude")
__all__ = ["ConfigError", "LintConfig", "load_config"]


class LintConfig(Record):
    __slots__ = ("selected", "per_file_ignores", "forced", "allowed_globals", "root", "source",
                 "exclude", "project")
    selected: frozenset[str]
    per_file_ignores: tuple[tuple[str, frozenset[str]], ...]
    forced: frozenset[str]
    """Codes named by ``--select``: per-file ignores do not drop them."""
    allowed_globals: AllowedGlobals
    root: str
    """Folder that per-file-ignores globs are relative to."""
    source: str | None
    """The pyproject.toml read, if any."""
    exclude: tuple[str, ...]
    """Patterns lint passes over in folder walks, besides the project's excludes."""
    project: Project

    def __init__(self, selected: frozenset[str] = DEFAULT_CODES,
                 per_file_ignores: tuple[tuple[str, frozenset[str]], ...] = (),
                 forced: frozenset[str] = frozenset(),
                 allowed_globals: AllowedGlobals | None = None, root: str = ".",
                 source: str | None = None, exclude: tuple[str, ...] = (),
                 project: Project | None = None) -> None:
        self.selected = selected
        self.per_file_ignores = per_file_ignores
        self.forced = forced
        self.allowed_globals = AllowedGlobals() if allowed_globals is None else allowed_globals
        self.root = root
        self.source = source
        self.exclude = exclude
        self.project = Project() if project is None else project

    def codes_for(self, path: str) -> frozenset[str]:
        codes = self.selected
        relative = os.path.relpath(os.path.abspath(path), os.path.abspath(self.root))
        relative = relative.replace(os.sep, "/")
        for pattern, ignored in self.per_file_ignores:
            if _matches(pattern, relative):
                codes = codes - (ignored - self.forced)
        return codes


DEFAULT_CONFIG = LintConfig()


def _matches(pattern: str, relative: str) -> bool:
    if fnmatch.fnmatchcase(relative, pattern):
        return True
    return "/" not in pattern and fnmatch.fnmatchcase(relative.rsplit("/", 1)[-1], pattern)


def resolve_codes(selectors: Iterable[str], where: str) -> frozenset[str]:
    """Codes for selectors: ``ALL``, a code, a code prefix (``CKPT00``) or a slug."""
    codes: set[str] = set()
    for raw in selectors:
        selector = raw.strip()
        if not selector:
            continue
        upper = selector.upper()
        if upper == "ALL":
            codes |= RULES.keys()
        elif selector in BY_SLUG:
            codes.add(BY_SLUG[selector].code)
        else:
            matched = {code for code in RULES if code.startswith(upper)}
            if not matched or not upper.startswith("CKPT"):
                raise ConfigError(f"{where}: unknown rule {raw!r} (use a code CKPT001..CKPT008, "
                                  "a prefix such as CKPT00, a slug such as pth-extension, or ALL)")
            codes |= matched
    return frozenset(codes)


def split_commas(items: Iterable[str] | None) -> list[str]:
    """``--select A,B --select C`` -> ``["A", "B", "C"]``."""
    return [part for item in items or () for part in item.split(",") if part.strip()]


def load_config(
    start: str = ".", select: list[str] | None = None, ignore: list[str] | None = None,
    project: Project | None = None,
) -> LintConfig:
    """The configuration for a run from ``start``; ``select``/``ignore`` are the flags' values."""
    project = project if project is not None else find_project(start)
    source = project.path
    table = project.table.get("lint", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{source}: [tool.ckpt.lint] must be a table")
    where = source or "configuration"
    unknown = sorted(set(table) - set(_KEYS))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)} in [tool.ckpt.lint] "
                          f"(known: {', '.join(_KEYS)})")
    file_select = (resolve_codes(_strings(table, "select", where), where)
                   if "select" in table else None)
    file_ignore = resolve_codes(_strings(table, "ignore", where), where)
    cli_select = resolve_codes(select, "--select") if select else None
    cli_ignore = resolve_codes(ignore or (), "--ignore")
    forced = cli_select or frozenset()
    base = cli_select if cli_select is not None else file_select
    selected = (DEFAULT_CODES if base is None else base) - (file_ignore - forced) - cli_ignore
    root = project.root if source else os.path.abspath(start)
    return LintConfig(selected, _per_file_ignores(table, where), forced,
                      _allowed_globals(_strings(table, "allowed-globals", where), where), root,
                      source,
                      tuple(_strings(table, "exclude", where)), project)


def _allowed_globals(entries: list[str], where: str) -> AllowedGlobals:
    """The project's extra globals, refusing what ckpt knows runs code: a configuration file
    travels with the files it configures (a downloaded model repository can ship one), so it
    must not be able to switch CKPT002 off for ``builtins.exec``."""
    from ckpt_tool.model.checkpoint import Safety
    from ckpt_tool.pickles.reviewed import Tier, reviewed_table
    from ckpt_tool.pickles.safety import rate

    code = reviewed_table().names(Tier.CODE)
    for entry in entries:
        if entry.endswith(".*"):
            module = entry[:-2]
            known = [name for name in code if name == module or name.startswith(module + ".")]
            reason = f"it holds {', '.join(known[:3])}" if known else None
        else:
            module, _, name = entry.rpartition(".")
            rating = rate(module, name)
            reason = rating.reason if rating.safety is Safety.CODE else None
        if reason is not None:
            raise ConfigError(f"{where}: allowed-globals cannot allow {entry!r}: ckpt knows it "
                              f"runs code or touches the system ({reason})")
    return AllowedGlobals.parse(entries)


def _strings(table: dict[str, Any], key: str, where: str) -> list[str]:
    return strings(table, key, where)


def _per_file_ignores(table: dict[str, Any], where: str) -> tuple[tuple[str, frozenset[str]], ...]:
    value = table.get("per-file-ignores", {})
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: per-file-ignores must map globs to lists of codes")
    return tuple((pattern, resolve_codes(_strings(value, pattern, where), where))
                 for pattern in value)
