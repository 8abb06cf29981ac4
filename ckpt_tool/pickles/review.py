"""Review the policy table against the installed torch, numpy and friends (maintenance tool).

``python -m ckpt_tool.pickles.review`` imports every ``data``/``reviewed`` entry of
``data/reviewed_globals.txt``, and reports each one whose kind or loading hooks differ from what
the table recorded, or that no longer resolves; it exits 1 when there is any difference.
``--candidates`` prints a table line (reason ``TODO``) for every ``torch.nn`` module class,
``torch.nn.utils`` hook class and ``torch.optim`` optimizer the table does not list yet.
``--update`` rewrites the kind and hooks columns of the listed entries to what is installed:
run it only after reading the source of every class it reports (README, "Reviewing a new torch
release").

A hook is a method that unpickling (or using the object as a dict key) may call with arguments
the file chooses, so a reviewer has to read it:

- ``__new__``/``__init__``: REDUCE calls the class itself with any arguments, NEWOBJ its
  ``__new__``; ``copyreg.__reduce_ex__`` output only calls ``__new__``.
- ``__setstate__``: BUILD; without one, BUILD updates ``__dict__`` and ``setattr``s slot state,
  which runs ``__setattr__`` and property setters (``set:NAME``).
- ``__getattr__``/``__getattribute__``: BUILD looks ``__setstate__`` up on the instance.
- ``__setitem__``, ``append``, ``extend``: SETITEM(S) and APPEND(S) on an object that is not a
  dict or list (plain pickle only; torch's weights-only loader refuses that).
- ``__hash__``/``__eq__``: the object as a dict key or set member.
- ``__del__``: when the loaded object is dropped.
- ``__reduce__``/``__reduce_ex__``: how the class pickles, so which globals its files name.

A hook is written ``NAME`` when the class defines it, ``NAME@Owner`` when it inherits it from
``Owner`` (a class's ``__qualname__``); hooks inherited from ``object`` or from a class that is
itself on torch's allow-list or in the table are left out (that entry holds their review).
Needs the libraries installed; the rest of ckpt never imports this module.
"""

from __future__ import annotations

import importlib
import inspect
import sys
import types
from collections.abc import Iterable, Iterator
from typing import Any

from ckpt_tool.pickles.reviewed import TABLE_PATH, Entry, ReviewedTable, Tier, reviewed_table
from ckpt_tool.pickles.safety import torch_weights_only_globals

HOOKS = ("__new__", "__init__", "__setstate__", "__reduce__", "__reduce_ex__", "__del__",
         "__setattr__", "__getattr__", "__getattribute__", "__setitem__", "append", "extend",
         "__hash__", "__eq__")
_C_DESCRIPTORS = (types.GetSetDescriptorType, types.MemberDescriptorType)
_HOOK_MODULES = ("torch.nn.utils.spectral_norm", "torch.nn.utils.weight_norm",
                 "torch.nn.utils.prune")
"""Modules whose classes a whole-model pickle carries as hooks of its modules."""


class Unresolved(Exception):
    pass


def resolve(full_name: str) -> Any:
    """Import the longest module prefix of ``full_name`` and walk the rest as attributes, as
    ``pickle.Unpickler.find_class`` would for a module and a (dotted) name."""
    parts = full_name.split(".")
    for end in range(len(parts) - 1, 0, -1):
        try:
            value: Any = importlib.import_module(".".join(parts[:end]))
        except ImportError:
            continue
        try:
            for part in parts[end:]:
                value = getattr(value, part)
        except AttributeError:
            break
        return value
    raise Unresolved(full_name)


def kind_of(value: Any) -> str:
    if isinstance(value, type):
        return "class"
    if inspect.isroutine(value):
        return "function"
    return "object"


def qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def hooks_of(cls: type, covered: Iterable[str] = ()) -> tuple[str, ...]:
    """The loading hooks ``cls`` overrides, as the table writes them (see the module doc)."""
    covered = set(covered) - {qualified(cls)}
    found: list[str] = []
    for hook in HOOKS:
        owner = next((klass for klass in cls.__mro__ if hook in vars(klass)), object)
        if owner is not object and vars(owner)[hook] is not None:
            found.extend(_written(hook, cls, owner, covered))
    seen: set[str] = set()
    for owner in cls.__mro__:
        for name, attr in vars(owner).items():
            if name in seen:
                continue
            seen.add(name)
            if owner is not object and _has_setter(attr):
                found.extend(_written(f"set:{name}", cls, owner, covered))
    return tuple(sorted(found))


def _written(hook: str, cls: type, owner: type, covered: set[str]) -> list[str]:
    if owner is cls:
        return [hook]
    if qualified(owner) in covered:
        return []
    return [f"{hook}@{owner.__qualname__}"]


def _has_setter(attr: Any) -> bool:
    """A Python-level setter: a property (or enum.property) with ``fset``, or another data
    descriptor. C getset and slot descriptors only store the value."""
    if isinstance(attr, (*_C_DESCRIPTORS, type)):
        return False
    if isinstance(attr, property) or hasattr(attr, "fset"):
        return getattr(attr, "fset", None) is not None
    return hasattr(type(attr), "__set__")


def covered_names(table: ReviewedTable) -> set[str]:
    return set(torch_weights_only_globals()) | set(table.names(Tier.DATA, Tier.REVIEWED))


def installed(entry: Entry) -> bool:
    top = entry.name.split(".")[0]
    if top in sys.modules:
        return True
    try:
        importlib.import_module(top)
    except ImportError:
        return False
    return True


Observed = tuple[str, tuple[str, ...]]
"""An installed global's kind (``class``, ``function``...) and the hooks its class defines."""


def observed(entry: Entry, covered: set[str]) -> Observed:
    """(kind, hooks) of the installed global an entry names; raises ``Unresolved``."""
    value = resolve(entry.name)
    kind = kind_of(value)
    return kind, hooks_of(value, covered) if kind == "class" else ()


def observations(table: ReviewedTable) -> Iterator[tuple[Entry, Observed | None]]:
    """(entry, (kind, hooks) of its installed global, or None where it no longer resolves) for
    every data/reviewed entry whose module is installed."""
    covered = covered_names(table)
    for entry in table.entries:
        if entry.tier is Tier.CODE or not installed(entry):
            continue
        try:
            yield entry, observed(entry, covered)
        except Unresolved:
            yield entry, None


def differences(table: ReviewedTable) -> Iterator[str]:
    """One line per data/reviewed entry whose installed global differs from its review."""
    for entry, found in observations(table):
        if found is None:
            yield f"{entry.name}: does not resolve any more"
            continue
        kind, hooks = found
        if kind != entry.kind:
            yield f"{entry.name}: is a {kind}, reviewed as a {entry.kind}"
        if hooks != entry.hooks:
            added = sorted(set(hooks) - set(entry.hooks))
            gone = sorted(set(entry.hooks) - set(hooks))
            yield f"{entry.name}: hooks changed (new: {added or '-'}, gone: {gone or '-'})"


def nn_candidates() -> Iterator[type]:
    """Every public ``torch.nn.modules`` class that is a Module (the base Module included), the
    hook classes of ``torch.nn.utils`` that whole-model pickles carry, and the ``torch.optim``
    optimizers (a whole optimizer saved instead of its state_dict)."""
    import pkgutil

    import torch.nn
    import torch.optim

    def submodules(package: types.ModuleType) -> list[str]:
        return sorted(f"{package.__name__}.{info.name}"
                      for info in pkgutil.iter_modules(package.__path__)
                      if not info.name.startswith("_") or package is torch.optim)

    groups = ((submodules(torch.nn.modules), torch.nn.Module), (_HOOK_MODULES, object),
              (["torch.optim", *submodules(torch.optim)], torch.optim.Optimizer))
    for module_names, base in groups:
        for module_name in module_names:
            module = importlib.import_module(module_name)
            for name, value in vars(module).items():
                if (isinstance(value, type) and value.__module__ == module_name
                        and not name.startswith("_") and "<locals>" not in value.__qualname__
                        and issubclass(value, base)):
                    yield value


def candidate_lines(table: ReviewedTable) -> Iterator[str]:
    covered = covered_names(table)
    for cls in nn_candidates():
        name = qualified(cls)
        if name not in table.by_name:
            yield format_line("reviewed", name, "class", hooks_of(cls, covered), "TODO")


def format_line(tier: str, name: str, kind: str, hooks: tuple[str, ...], reason: str) -> str:
    return f"{tier:<9}{name:<64} {kind:<9}{','.join(hooks) or '-'}  {reason}"


def updated_text(table: ReviewedTable, text: str) -> str:
    lines = text.splitlines()
    for entry, found in observations(table):
        if found is not None:
            lines[entry.line - 1] = format_line(entry.tier.value, entry.name, *found,
                                                entry.reason)
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:  # pragma: no cover - maintenance tool
    table = reviewed_table()
    if "--candidates" in argv:
        for line in candidate_lines(table):
            print(line)
        return 0
    if "--update" in argv:
        TABLE_PATH.write_text(updated_text(table, TABLE_PATH.read_text(encoding="utf-8")),
                              encoding="utf-8")
        return 0
    found = list(differences(table))
    for line in found:
        print(line)
    return 1 if found else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
