"""Fold a checkpoint's names into a tree, with runs of identical numbered layers collapsed:
``model.layers.{0..31}.mlp.up_proj.weight`` stands for 32 tensors of one dtype and shape.

Collapsing works on name templates (the name with each number replaced by a slot), so it costs
one pass over the names: 50,000 tensors collapse in a few tens of milliseconds.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from ckpt_tool.model.record import Record

Entry = tuple[tuple[str, ...], str, Any]
"""(path parts, signature, payload): entries with one template and signature may collapse."""


class Group(Record):
    __slots__ = ("parts", "signature", "items")
    __hash__ = None  # type: ignore[assignment]  # mutable
    parts: tuple[str, ...]
    """The path, with ``{0..31}`` where numbers were collapsed."""
    signature: str
    items: list[Any]

    def __init__(self, parts: tuple[str, ...], signature: str, items: list[Any]) -> None:
        self.parts = parts
        self.signature = signature
        self.items = items

    @property
    def name(self) -> str:
        return ".".join(self.parts)


def _is_index(part: str) -> bool:
    return part.isdigit() and (part == "0" or not part.startswith("0"))


def collapse(entries: Iterable[Entry], enabled: bool = True) -> list[Group]:
    """Groups in the order of their first entry; each group is one collapsed name."""
    if not enabled:
        return [Group(parts, signature, [payload]) for parts, signature, payload in entries]
    templates: dict[tuple, list[tuple[tuple[int, ...], Any]]] = {}
    for parts, signature, payload in entries:
        template = tuple(None if _is_index(p) else p for p in parts)
        indices = tuple(int(p) for p in parts if _is_index(p))
        templates.setdefault((template, signature), []).append((indices, payload))
    groups: list[Group] = []
    for (template, signature), members in templates.items():
        groups += _fold(template, signature, members)
    return groups


def _fold(template: tuple, signature: str, members: list) -> list[Group]:
    """One group when the indices form a full grid, else split on the first numbered part."""
    slots = [i for i, part in enumerate(template) if part is None]
    if len(members) == 1 or not slots:
        return [Group(_fill(template, indices), signature, [payload])
                for indices, payload in members]
    values = [sorted({indices[k] for indices, _ in members}) for k in range(len(slots))]
    if math.prod(len(v) for v in values) == len(members):
        labels = [range_label(v) if len(v) > 1 else str(v[0]) for v in values]
        return [Group(_fill(template, labels), signature, [p for _, p in members])]
    by_first: dict[int, list] = {}
    for indices, payload in members:
        by_first.setdefault(indices[0], []).append((indices[1:], payload))
    result: list[Group] = []
    for first, rest in by_first.items():
        narrowed = tuple(str(first) if i == slots[0] else part for i, part in enumerate(template))
        result += _fold(narrowed, signature, rest)
    return result


def _fill(template: tuple, values: Iterable[Any]) -> tuple[str, ...]:
    filled = iter(values)
    return tuple(str(next(filled)) if part is None else part for part in template)


def range_label(numbers: list[int]) -> str:
    numbers = sorted(numbers)
    if numbers == list(range(numbers[0], numbers[-1] + 1)):
        return f"{{{numbers[0]}..{numbers[-1]}}}"
    shown = ",".join(str(n) for n in numbers[:8])
    return "{" + shown + (",..." if len(numbers) > 8 else "") + "}"


class Node(Record):
    __slots__ = ("children", "group")
    __hash__ = None  # type: ignore[assignment]  # mutable
    children: dict[str, Node]
    group: Group | None
    """Set on leaves: the (collapsed) entry shown there."""

    def __init__(self, children: dict[str, Node] | None = None, group: Group | None = None) -> None:
        self.children = {} if children is None else children
        self.group = group


def build_tree(groups: list[Group]) -> Node:
    root = Node()
    for group in groups:
        node = root
        for part in group.parts:
            node = node.children.setdefault(part, Node())
        if node.children or node.group is not None:  # a value and a container at one path
            node = node.children.setdefault(".", Node())
        node.group = group
    return root
