"""A checkpoint's tensors split into the model's parameters, training state and the rest.

The model's parameters are the tensors under the weights root ``ckpt convert`` would take
(``state_dict``, ``model``...: ``model.roots``); training state is optimizer, scheduler and scaler
state (a file that is an optimizer's ``state_dict`` is all training state); anything else
(an EMA copy beside the weights, a stray tensor) is "other". Elements are counted once per
storage region, so a tied weight counts once.
"""

from __future__ import annotations

from typing import Any

from ckpt_tool.model.record import Record
from ckpt_tool.model.roots import Path, find_training_state, find_weights_root, is_prefix
from ckpt_tool.model.roots import is_training_state as _is_training_state


class Parts(Record):
    __slots__ = ("weights_root", "parameters", "training_state", "other")
    weights_root: str
    """Where the model's weights were found (``'state_dict'``, ``the whole file (...)``)."""
    parameters: int
    training_state: int
    other: int

    def __init__(self, weights_root: str, parameters: int, training_state: int, other: int) -> None:
        self.weights_root = weights_root
        self.parameters = parameters
        self.training_state = training_state
        self.other = other

    @property
    def elements(self) -> int:
        return self.parameters + self.training_state + self.other


def split_parts(root: Any, rows: list) -> Parts:
    """``rows``: the report's tensor rows (``name``, ``path``, ``tensor``)."""
    if isinstance(root, dict) and _is_training_state("", root):
        weights: Path | None = None
        description = "none (an optimizer's state)"
        training: list[Path] = [()]
    else:
        weights, description = find_weights_root(root)
        training = [p for p in find_training_state(root) if weights is None
                    or not is_prefix(p, weights)]
    parameters = training_state = other = 0
    depth = len(weights) if weights is not None else 0
    seen: set[tuple] = set()
    for row in rows:
        tensor = row.tensor
        storage = tensor.storage
        key = ((storage.key, id(storage), tensor.storage_offset, tensor.shape, tensor.stride)
               if storage is not None else (id(tensor),))
        if key in seen:
            continue
        seen.add(key)
        path = row.path
        if training and any(is_prefix(p, path) for p in training):
            training_state += tensor.numel
        elif weights is not None and path[:depth] == weights:
            parameters += tensor.numel
        else:
            other += tensor.numel
    return Parts(description, parameters, training_state, other)
