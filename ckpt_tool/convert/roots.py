"""Which part of a checkpoint holds the weights, and what is left out.

A training checkpoint is a dict of a model's state_dict next to optimizer state, the epoch, the
arguments... Its weights sit under one of a few usual keys; the search descends through them
(``{"model": {"module": {...}}}``) as long as one holds a container of tensors. Optimizer, scheduler
and gradient-scaler state is training state: left out unless asked for, and reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ckpt_tool.errors import ConversionError
from ckpt_tool.limits import Limits
from ckpt_tool.model.checkpoint import TensorRef
from ckpt_tool.model.objects import Opaque, ScriptArchive
from ckpt_tool.model.tree import children, walk

WEIGHT_ROOTS = ("state_dict", "model_state_dict", "model_state", "model", "module", "net",
                "network", "ema", "model_ema", "ema_state_dict")
"""Keys searched for the weights, in this order (the first that holds tensors wins)."""
TRAINING_STATE_KEYS = frozenset({
    "optimizer", "optimizers", "optimizer_state_dict", "optimizer_state", "optimizer_states",
    "optim", "optim_state", "opt", "opt_state", "lr_scheduler", "lr_schedulers", "scheduler",
    "schedulers", "scaler", "grad_scaler", "amp",
})
_TRAINING_STATE_SEARCH_DEPTH = 3

Path = tuple[str, ...]


@dataclass(frozen=True)
class LeftOut:
    """A subtree holding tensors that is not converted."""

    path: Path
    tensors: int
    training_state: bool

    @property
    def name(self) -> str:
        return ".".join(self.path)


@dataclass
class Selection:
    root: Path
    description: str
    """How the weights were chosen, for the report (``'state_dict'``, ``the whole file``...)."""
    tensors: list[tuple[str, TensorRef]] = field(default_factory=list)
    values: list[tuple[str, Any]] = field(default_factory=list)
    """Non-tensor leaves kept as metadata, by name."""
    left_out: list[LeftOut] = field(default_factory=list)


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
    training = [p for p in find_training_state(root) if not _is_prefix(p, path)]
    selection = Selection(path, description)
    _collect(selection, root, training, include_training_state, limits)
    return selection


def find_weights_root(root: Any) -> tuple[Path, str]:
    """Descend through the usual keys while one holds a container of tensors. A tensor beside
    them (``best_acc1`` saved as a tensor) does not stop the search; a state_dict, whose values
    are tensors, never descends."""
    path: Path = ()
    node = root
    while isinstance(node, dict):
        for key in WEIGHT_ROOTS:
            child = node.get(key)
            if child is not None and not isinstance(child, TensorRef) and _holds_tensors(child):
                path, node = (*path, key), child
                break
        else:
            break
    if path:
        return path, repr(".".join(path))
    return path, "the whole file" + _kind_of_whole(root)


def _kind_of_whole(root: Any) -> str:
    if isinstance(root, ScriptArchive):
        return " (a TorchScript module)"
    if isinstance(root, Opaque):
        return " (a pickled module, named like its state_dict)"
    if isinstance(root, dict) and root and all(isinstance(v, TensorRef) for v in root.values()):
        return " (a state_dict)"
    if isinstance(root, dict) and any(isinstance(v, TensorRef) for v in root.values()):
        return " (a dict with tensors at its top level)"
    return f" (no {', '.join(WEIGHT_ROOTS[:4])}... key holds its tensors)"


def _holds_tensors(node: Any) -> bool:
    return isinstance(node, TensorRef) or any(leaf.is_tensor for leaf in walk(node))


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
    if not _holds_tensors(node):
        raise ConversionError(f"--key {key}: holds no tensors")
    return path


def find_training_state(root: Any) -> list[Path]:
    """Paths of optimizer/scheduler/scaler state near the top of the tree."""
    found: list[Path] = []
    stack: list[tuple[Path, Any]] = [((), root)]
    while stack:
        path, node = stack.pop()
        for name, child in children(node) or []:
            if _is_training_state(name, child):
                found.append((*path, name))
            elif len(path) + 1 < _TRAINING_STATE_SEARCH_DEPTH and isinstance(child, dict):
                stack.append(((*path, name), child))
    return found


def _is_training_state(name: str, value: Any) -> bool:
    if name.lower() in TRAINING_STATE_KEYS:
        return True
    return isinstance(value, dict) and "state" in value and "param_groups" in value


def _is_prefix(prefix: Path, path: Path) -> bool:
    return path[: len(prefix)] == prefix


def _collect(selection: Selection, root: Any, training: list[Path], include_training: bool,
             limits: Limits) -> None:
    left_out: dict[Path, list[int]] = {}
    base = selection.root
    for leaf in walk(root, limits):
        in_training = next((p for p in training if _is_prefix(p, leaf.path)), None)
        in_root = _is_prefix(base, leaf.path) and in_training is None
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
