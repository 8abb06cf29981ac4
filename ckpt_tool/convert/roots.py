"""Which part of a checkpoint holds the weights, and what is left out.

A training checkpoint is a dict of a model's state_dict next to optimizer state, the epoch, the
arguments... Its weights sit under one of a few usual keys; the search descends through them
(``{"model": {"module": {...}}}``) as long as one holds a container of tensors. Optimizer, scheduler
and gradient-scaler state is training state: left out unless asked for, and reported.
"""

from __future__ import annotations

from typing import Any

from ckpt_tool.errors import ConversionError
from ckpt_tool.limits import Limits
from ckpt_tool.model.checkpoint import TensorRef
from ckpt_tool.model.objects import Opaque
from ckpt_tool.model.record import Record
from ckpt_tool.model.roots import (
    TRAINING_STATE_KEYS,
    WEIGHT_ROOTS,
    Path,
    find_training_state,
    find_weights_root,
    holds_tensors,
    is_prefix,
)
from ckpt_tool.model.tree import children, walk

__all__ = ["TRAINING_STATE_KEYS", "WEIGHT_ROOTS", "LeftOut", "Selection", "find_weights_root",
           "resolve_key", "select"]


class LeftOut(Record):
    """A subtree holding tensors that is not converted."""

    __slots__ = ("path", "tensors", "training_state")

    def __init__(self, path: Path, tensors: int, training_state: bool) -> None:
        self.path, self.tensors, self.training_state = path, tensors, training_state

    @property
    def name(self) -> str:
        return ".".join(self.path)


class Selection(Record):
    """``description``: how the weights were chosen, for the report (``'state_dict'``, ``the
    whole file``...); ``values``: non-tensor leaves kept as metadata, by name."""

    __slots__ = ("description", "left_out", "root", "tensors", "values")

    def __init__(self, root: Path, description: str) -> None:
        self.root, self.description = root, description
        self.tensors: list[tuple[str, TensorRef]] = []
        self.values: list[tuple[str, Any]] = []
        self.left_out: list[LeftOut] = []


def select(root: Any, key: str | None, all_tensors: bool, include_training_state: bool,
           limits: Limits) -> Selection:
    """Name the tensors to convert and the values to keep, relative to the chosen root."""
    if key is not None:
        path = resolve_key(root, key)
        description = repr(".".join(path))
    elif all_tensors:
        path, description = (), "the whole file (--all)"
    else:
        path, description = find_weights_root(root)
    training = [p for p in find_training_state(root) if not is_prefix(p, path)]
    selection = Selection(path, description)
    _collect(selection, root, training, include_training_state, limits)
    return selection


def resolve_key(root: Any, key: str) -> Path:
    """``--key a.b.c`` as a path, matching dict keys that themselves contain dots."""
    path: Path = ()
    node, rest = root, key
    while rest:
        named = children(node) or []
        matches = [(name, child) for name, child in named
                   if rest == name or rest.startswith(name + ".")]
        if not matches:
            where = repr(".".join(path)) if path else "the top level"
            holds = ", ".join(name for name, _ in named[:12]) or "nothing with keys"
            raise ConversionError(f"--key {key}: {where} has no {rest!r}; it holds: {holds}")
        name, node = max(matches, key=lambda match: len(match[0]))
        path, rest = (*path, name), rest[len(name) + 1:]
    if not holds_tensors(node):
        raise ConversionError(f"--key {key}: holds no tensors")
    return path


def _collect(selection: Selection, root: Any, training: list[Path], include_training: bool,
             limits: Limits) -> None:
    left_out: dict[Path, list[int]] = {}
    base = selection.root
    for leaf in walk(root, limits):
        in_training = next((p for p in training if is_prefix(p, leaf.path)), None)
        in_root = is_prefix(base, leaf.path) and in_training is None
        if in_root or (in_training is not None and include_training):
            name = _relative_name(base, leaf.path) if in_root else ".".join(leaf.path)
            if leaf.is_tensor:
                selection.tensors.append((name, leaf.value))
            elif not isinstance(leaf.value, Opaque):  # an object with nothing to name inside
                selection.values.append((name, leaf.value))
        elif leaf.is_tensor:
            group = in_training or leaf.path[: _common_length(base, leaf.path) + 1]
            left_out.setdefault(group, [0])[0] += 1
        elif in_training is None and not isinstance(leaf.value, Opaque):
            selection.values.append((".".join(leaf.path), leaf.value))
    selection.left_out = [LeftOut(path, count[0], path in training)
                          for path, count in left_out.items()]


def _relative_name(base: Path, path: Path) -> str:
    relative = path[len(base):]
    return ".".join(relative if relative else path)


def _common_length(a: Path, b: Path) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n
