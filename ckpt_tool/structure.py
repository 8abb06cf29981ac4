"""Fold a checkpoint's names into a tree, with runs of identical numbered layers collapsed:
``model.layers.{0..31}.mlp.up_proj.weight`` stands for 32 tensors of one dtype and shape."""

from __future__ import annotations

from typing import Any


class Node:
    __slots__ = ("children", "items", "shape", "signature")

    def __init__(self) -> None:
        self.children: dict[str, Node] = {}
        self.items: list[Any] = []
        """The payloads of the leaves this node stands for (several once collapsed)."""
        self.signature: str | None = None
        """For leaves: what must match for two numbered leaves to collapse (dtype and shape)."""
        self.shape = 0
        """An id of the subtree's structure: equal ids, identical subtrees."""

    @property
    def is_leaf(self) -> bool:
        return self.signature is not None


def build(entries: list[tuple[tuple[str, ...], str, Any]], collapse: bool = True) -> Node:
    """``entries`` are (path, signature, payload); returns the (collapsed) root node."""
    root = Node()
    for path, signature, payload in entries:
        node = root
        for part in path:
            child = node.children.get(part)
            if child is None:
                child = node.children[part] = Node()
            node = child
        if node.children:  # a leaf and a container at one path: keep both, leaf under "."
            node = node.children.setdefault(".", Node())
        node.signature = signature
        node.items.append(payload)
    if collapse:
        _collapse(root, {})
    return root


def _collapse(node: Node, shapes: dict[tuple, int]) -> None:
    """Bottom-up: give every node a structural id, then merge numbered siblings sharing one."""
    for child in node.children.values():
        _collapse(child, shapes)
    groups: dict[int, list[str]] = {}
    for key, child in node.children.items():
        if key.isdigit():
            groups.setdefault(child.shape, []).append(key)
    if any(len(keys) > 1 for keys in groups.values()):
        merged: dict[str, Node] = {}
        for key, child in node.children.items():
            group = groups.get(child.shape) if key.isdigit() else None
            if group is None or len(group) == 1:
                merged[key] = child
            elif key == group[0]:
                for other in group[1:]:
                    _merge(child, node.children[other])
                merged[range_label([int(k) for k in group])] = child
        node.children = merged
    structure = (node.signature, tuple((k, c.shape) for k, c in node.children.items()))
    node.shape = shapes.setdefault(structure, len(shapes))


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
    stack: list[tuple[tuple[str, ...], Node]] = [(prefix, node)]
    while stack:
        path, current = stack.pop()
        if current.is_leaf:
            result.append((".".join(path), current))
        for key, child in reversed(current.children.items()):
            stack.append((path if key == "." else (*path, key), child))
    return result
