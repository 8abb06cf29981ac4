"""Walk a checkpoint's object tree into named leaves: tensors and every other value.

Names are dotted paths from the root: dict keys as they are, list indices as numbers, attributes
of placeholder objects by attribute name. An ``nn.Module`` pickled whole is named the way its
``state_dict()`` would be (``fc1.weight``, not ``_modules.fc1._parameters.weight``), which is
also its attribute path in Python.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ckpt_tool.errors import LimitExceeded
from ckpt_tool.limits import DEFAULT_LIMITS, Limits
from ckpt_tool.model.checkpoint import TensorRef
from ckpt_tool.model.objects import DataRecord, Namespace, Opaque

_MODULE_KEYS = ("_parameters", "_buffers", "_modules")
_HIDDEN_MODULE_ATTRIBUTES = frozenset({"training"})


@dataclass(frozen=True)
class Leaf:
    path: tuple[str, ...]
    value: Any

    @property
    def name(self) -> str:
        return ".".join(self.path)

    @property
    def is_tensor(self) -> bool:
        return isinstance(self.value, TensorRef)


def _is_scalar_sequence(value: list | tuple) -> bool:
    return not any(isinstance(item, dict | list | tuple | TensorRef | Opaque | Namespace
                              | DataRecord) for item in value)


def children(value: Any) -> list[tuple[str, Any]] | None:
    """The named children of a container, or None for a leaf."""
    if isinstance(value, dict):
        return [(str(key), item) for key, item in value.items()]
    if isinstance(value, list | tuple):
        if not value or _is_scalar_sequence(value):
            return None
        return [(str(index), item) for index, item in enumerate(value)]
    if isinstance(value, Namespace | DataRecord):
        return list(value.fields.items())
    if isinstance(value, Opaque):
        if value.state is None and not value.items and not value.entries and (
            _is_scalar_sequence(value.args)
        ):
            return None  # a call with plain arguments is one value: what it would have called
        return _opaque_children(value)
    return None


def _opaque_children(value: Opaque) -> list[tuple[str, Any]]:
    attributes = value.attributes()
    result: list[tuple[str, Any]] = []
    if attributes is not None and all(isinstance(attributes.get(k), dict) for k in _MODULE_KEYS):
        for key in ("_parameters", "_buffers"):
            result += [(name, t) for name, t in attributes[key].items() if t is not None]
        result += list(attributes["_modules"].items())
        result += [(name, v) for name, v in attributes.items()
                   if not str(name).startswith("_") and name not in _HIDDEN_MODULE_ATTRIBUTES]
        return result
    if attributes is not None:
        scripted = value.module.startswith("__torch__")  # TorchScript module: hide its bookkeeping
        result += [(str(name), v) for name, v in attributes.items()
                   if not (scripted and (str(name).startswith("_") or name == "training"))]
    elif value.state is not None:
        result.append(("state", value.state))
    if value.args:
        result.append(("args", value.args))
    result += [(str(index), item) for index, item in enumerate(value.items)]
    result += [(str(key), item) for key, item in value.entries]
    return result


def walk(root: Any, limits: Limits = DEFAULT_LIMITS) -> Iterator[Leaf]:
    """Depth-first, in the pickle's order; a cycle ends at the repeated object."""
    stack: list[tuple[tuple[str, ...], Any, frozenset[int]]] = [((), root, frozenset())]
    visited = 0
    while stack:
        path, value, ancestors = stack.pop()
        visited += 1
        if visited > limits.max_objects:
            raise LimitExceeded(f"more than {limits.max_objects} objects in the tree "
                                "(limit max_objects)")
        named = children(value)
        if named is None:
            yield Leaf(path, value)
            continue
        if id(value) in ancestors:
            yield Leaf(path, "<cycle>")
            continue
        if len(path) >= limits.max_depth:
            raise LimitExceeded(f"the object tree nests deeper than {limits.max_depth} "
                                "(limit max_depth)")
        inner = ancestors | {id(value)}
        if not named and path:
            yield Leaf(path, value)
        for name, child in reversed(named):
            stack.append(((*path, name), child, inner))


def named_tensors(root: Any, limits: Limits = DEFAULT_LIMITS) -> list[tuple[str, TensorRef]]:
    return [(leaf.name, leaf.value) for leaf in walk(root, limits) if leaf.is_tensor]
