"""The reviewed policy table (``data/reviewed_globals.txt``): one line per global, loaded once.

Each line is ``tier  name  kind  hooks  reason``:

- ``data``: ckpt read its source; it builds only data whatever its arguments (and calls nothing
  but callables the pickle passes it, which are judged on their own).
- ``reviewed``: harmless to construct (``__new__``/``__init__``/``__setstate__`` only store what
  they are given) but not plain data, such as a ``torch.nn`` module; torch's weights-only loader
  refuses it until it is allowed with ``add_safe_globals``.
- ``code``: known to run code or touch the system. Kind ``module`` covers the module and every
  name under it; an exact ``data`` or ``reviewed`` entry under such a module still wins.

``kind`` is what the name resolves to (``class``, ``function``, ``object``; ``module`` or
``global`` for code entries), ``hooks`` the loading hooks a class overrides (see
``review.py``), ``-`` for none.
Nothing here imports the libraries named: ``python -m ckpt_tool.pickles.review`` does, to check
the table against the installed releases.
"""

from __future__ import annotations

from enum import Enum
from functools import lru_cache
from pathlib import Path

from ckpt_tool.model.record import Record

TABLE_PATH = Path(__file__).with_name("data") / "reviewed_globals.txt"


class Tier(str, Enum):
    DATA = "data"
    REVIEWED = "reviewed"
    CODE = "code"


class Entry(Record):
    __slots__ = ("tier", "name", "kind", "hooks", "reason", "line")
    tier: Tier
    name: str
    kind: str
    hooks: tuple[str, ...]
    reason: str
    line: int

    def __init__(self, tier: Tier, name: str, kind: str, hooks: tuple[str, ...], reason: str,
                 line: int) -> None:
        self.tier = tier
        self.name = name
        self.kind = kind
        self.hooks = hooks
        self.reason = reason
        self.line = line

    @property
    def is_module(self) -> bool:
        return self.kind == "module"


class ReviewedTable:
    __slots__ = ("entries", "header", "by_name")
    entries: tuple[Entry, ...]
    header: str
    by_name: dict[str, Entry]

    def __init__(self, entries: tuple[Entry, ...], header: str = "") -> None:
        self.entries = entries
        self.header = header
        self.by_name = {entry.name: entry for entry in entries}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ReviewedTable):
            return NotImplemented
        return (self.entries, self.header) == (other.entries, other.header)

    def __hash__(self) -> int:
        return hash((self.entries, self.header))

    def lookup(self, full_name: str) -> Entry | None:
        """The entry for ``full_name``: an exact entry, else the closest ``code`` module that
        holds it, else None."""
        entry = self.by_name.get(full_name)
        if entry is not None:
            return entry
        parts = full_name.split(".")
        for end in range(len(parts) - 1, 0, -1):
            entry = self.by_name.get(".".join(parts[:end]))
            if entry is not None and entry.is_module:
                return entry
        return None

    def names(self, *tiers: Tier) -> list[str]:
        return [entry.name for entry in self.entries if entry.tier in tiers]


class TableError(ValueError):
    pass


def parse_table(text: str) -> ReviewedTable:
    entries: list[Entry] = []
    header: list[str] = []
    seen: set[str] = set()
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            if not entries:
                header.append(raw)
            continue
        fields = line.split(None, 4)
        if len(fields) != 5:
            raise TableError(f"line {number}: expected tier, name, kind, hooks and a reason")
        tier, name, kind, hooks, reason = fields
        try:
            parsed_tier = Tier(tier)
        except ValueError:
            raise TableError(f"line {number}: unknown tier {tier!r}") from None
        if name in seen:
            raise TableError(f"line {number}: {name} is listed twice")
        seen.add(name)
        entries.append(Entry(parsed_tier, name, kind,
                             () if hooks == "-" else tuple(hooks.split(",")), reason, number))
    return ReviewedTable(tuple(entries), "\n".join(header))


@lru_cache(maxsize=1)
def reviewed_table() -> ReviewedTable:
    return parse_table(TABLE_PATH.read_text(encoding="utf-8"))
