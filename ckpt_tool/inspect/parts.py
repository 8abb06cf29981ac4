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
    # By storage (or, without one, by tensor): its first view; the views of a storage that
    # several tensors share are compared only then (no key built for most of 50,000 tensors).
    first: dict[int, Any] = {}
    views: dict[int, set[tuple[Any, ...]]] = {}
    for row in rows:
        tensor = row.tensor
        storage = tensor.storage
        owner = id(storage) if storage is not None else id(tensor)
        earlier = first.get(owner)
        if earlier is None:
            first[owner] = tensor
        else:
            if storage is None:
                continue  # the same tensor again
            seen = views.get(owner)
            if seen is None:
                seen = views[owner] = {_view(earlier)}
            view = _view(tensor)
            if view in seen:
                continue
            seen.add(view)
        path = row.path
        if training and any(is_prefix(p, path) for p in training):
            training_state += tensor.numel
        elif weights is not None and path[:depth] == weights:
            parameters += tensor.numel
        else:
            other += tensor.numel
    return Parts(description, parameters, training_state, other)


def _view(tensor: Any) -> tuple[Any, ...]:
    return tensor.storage_offset, tensor.shape, tensor.stride
