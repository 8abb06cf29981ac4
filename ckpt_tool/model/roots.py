"""Which part of a checkpoint holds a model's weights, and which part is training state.

A training checkpoint is a dict of a model's state_dict next to optimizer state, the epoch, the
arguments... Its weights sit under one of a few usual keys; the search descends through them
(``{"model": {"module": {...}}}``) as long as one holds a container of tensors. Optimizer, scheduler
and gradient-scaler state is training state. ``ckpt convert`` takes the weights from here and
``ckpt inspect`` counts the model's parameters apart from the training state.
"""

from __future__ import annotations

from typing import Any

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


def find_weights_root(root: Any) -> tuple[Path, str]:
    """Descend through the usual keys while one holds a container of tensors. A tensor beside
    them (``best_acc1`` saved as a tensor) does not stop the search; a state_dict, whose values
    are tensors, never descends."""
    path: Path = ()
    node = root
    while isinstance(node, dict):
        for key in WEIGHT_ROOTS:
            child = node.get(key)
            if child is not None and not isinstance(child, TensorRef) and holds_tensors(child):
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


def holds_tensors(node: Any) -> bool:
    return isinstance(node, TensorRef) or any(leaf.is_tensor for leaf in walk(node))


def find_training_state(root: Any) -> list[Path]:
    """Paths of optimizer/scheduler/scaler state near the top of the tree."""
    found: list[Path] = []
    stack: list[tuple[Path, Any]] = [((), root)]
    while stack:
        path, node = stack.pop()
        for name, child in children(node) or []:
            if is_training_state(name, child):
                found.append((*path, name))
            elif len(path) + 1 < _TRAINING_STATE_SEARCH_DEPTH and isinstance(child, dict):
                stack.append(((*path, name), child))
    return found


def is_training_state(name: str, value: Any) -> bool:
    # no key of TRAINING_STATE_KEYS has a dot, and 50,000 tensor names do: no lower() for them
    if "." not in name and name.lower() in TRAINING_STATE_KEYS:
        return True
    return isinstance(value, dict) and "state" in value and "param_groups" in value


def is_prefix(prefix: Path, path: Path) -> bool:
    return path[: len(prefix)] == prefix
