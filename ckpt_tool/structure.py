"""Fold a checkpoint's names into a tree, with runs of identical numbered layers collapsed:
``model.layers.{0..31}.mlp.up_proj.weight`` stands for 32 tensors of one dtype and shape."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Node:
    children: dict[str, Node] = field(default_factory=dict)
    items: list[Any] = field(default_factory=list)
    """The payloads of the leaves this node stands for (several once collapsed)."""
    signature: str | None = None
    """For leaves: what must match for two numbered leaves to collapse (dtype and shape)."""

    @property
    def is_leaf(self) -> bool:
        return self.signature is not None


def build(entries: list[tuple[tuple[str, ...], str, Any]], collapse: bool = True) -> Node:
    """``entries`` are (path, signature, payload); returns the (collapsed) root node."""
    root = Node()
    for path, signature, payload in entries:
        node = root
        for part in path:
            node = node.children.setdefault(part, Node())
        if node.children:  # a leaf and a container at one path: keep both, leaf under "."
            node = node.children.setdefault(".", Node())
        node.signature = signature
        node.items.append(payload)
    if collapse:
        _collapse(root)
    return root


def _shape_of(node: Node) -> str:
    if node.is_leaf and not node.children:
        return node.signature or ""
    return "(" + ",".join(f"{k}:{_shape_of(c)}" for k, c in node.children.items()) + ")"


def _collapse(node: Node) -> None:
    for child in node.children.values():
        _collapse(child)
    groups: dict[str, list[str]] = {}
    for key, child in node.children.items():
        if key.isdigit():
            groups.setdefault(_shape_of(child), []).append(key)
    if not any(len(keys) > 1 for keys in groups.values()):
        return
    merged: dict[str, Node] = {}
    placed: set[str] = set()
    for key, child in node.children.items():
        if not key.isdigit():
            merged[key] = child
            continue
        group = groups[_shape_of(child)]
        if len(group) == 1:
            merged[key] = child
        elif key == group[0]:
            target = child
            for other in group[1:]:
                _merge(target, node.children[other])
            merged[range_label([int(k) for k in group])] = target
            placed.update(group)
    node.children = merged


def _merge(into: Node, other: Node) -> None:
    into.items.extend(other.items)
    for key, child in other.children.items():
        _merge(into.children[key], child)


def range_label(numbers: list[int]) -> str:
    numbers = sorted(numbers)
    if numbers == list(range(numbers[0], numbers[-1] + 1)):
        return f"{{{numbers[0]}..{numbers[-1]}}}"
    shown = ",".join(str(n) for n in numbers[:8])
    return "{" + shown + (",..." if len(numbers) > 8 else "") + "}"


def leaves(node: Node, prefix: tuple[str, ...] = ()) -> list[tuple[str, Node]]:
    """(collapsed dotted name, leaf node) pairs in order."""
    result: list[tuple[str, Node]] = []
    if node.is_leaf:
        result.append((".".join(prefix), node))
    for key, child in node.children.items():
        result += leaves(child, prefix if key == "." else (*prefix, key))
    return result
