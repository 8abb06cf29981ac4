"""Walk a checkpoint's object tree into named leaves: tensors and every other value.

Names are dotted paths from the root: dict keys as they are, list indices as numbers, attributes
of placeholder objects by attribute name. An ``nn.Module`` pickled whole is named the way its
``state_dict()`` would be (``fc1.weight``, not ``_modules.fc1._parameters.weight``), which is
also its attribute path in Python; a private attribute is named only when it holds a tensor.
A TorchScript module is named by attribute path too (as ``torch.jit.load`` gives them), its
constants ``CONSTANTS.c0``... as its code names them. What a ``__getstate__`` returned (a scripted
class's, a ``torch.ScriptObject``'s) is named by position. An OmegaConf config is its plain data.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

from ckpt_tool.errors import LimitExceeded
from ckpt_tool.limits import DEFAULT_LIMITS, Limits
from ckpt_tool.model.checkpoint import TensorRef
from ckpt_tool.model.objects import (
    ConfigNode,
    DataRecord,
    Namespace,
    Opaque,
    ScriptArchive,
    ScriptObject,
)

_MODULE_KEYS = ("_parameters", "_buffers", "_modules")
_HIDDEN_MODULE_ATTRIBUTES = frozenset({"training", "_is_full_backward_hook"})
_PLAIN_TYPES = frozenset({str, int, float, bool, complex, bytes, set, frozenset})


class Leaf(NamedTuple):  # one per tensor and value: a tuple is the cheapest record to build
    path: tuple[str, ...]
    value: Any

    @property
    def name(self) -> str:
        return ".".join(self.path)

    @property
    def is_tensor(self) -> bool:
        return isinstance(self.value, TensorRef)


_NESTED = (dict, list, tuple, TensorRef, Opaque, Namespace, ScriptObject, ConfigNode, DataRecord)


def _is_scalar_sequence(value: list | tuple) -> bool:
    """No item is a container or a tensor (judged by the items' distinct types: one pass in C
    over a list of ten million strings, not ten million isinstance calls)."""
    return not any(issubclass(kind, _NESTED) for kind in set(map(type, value)))


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
    if isinstance(value, ConfigNode):
        return children(value.plain())
    if isinstance(value, ScriptObject):
        return _state_children(value.state)
    if isinstance(value, ScriptArchive):
        return _archive_children(value)
    if isinstance(value, Opaque):
        if value.state is None and not value.items and not value.entries and (
            _is_scalar_sequence(value.args)
        ):
            return None  # a call with plain arguments is one value: what it would have called
        return _opaque_children(value)
    return None


def _state_children(state: Any) -> list[tuple[str, Any]]:
    """What a ``__getstate__`` returned, named by position (or key): torch names the tuple a
    quantized Linear's packed params hold ``_packed_params.0`` and ``.1`` the same way."""
    if state is None:
        return []
    named = children(state) if isinstance(state, dict | list | tuple) else None
    return [("state", state)] if named is None else named


def _archive_children(archive: ScriptArchive) -> list[tuple[str, Any]]:
    result = children(archive.module) or []
    if archive.constants:
        result.append(("CONSTANTS", {f"c{i}": c for i, c in enumerate(archive.constants)}))
    return result


def _opaque_children(value: Opaque) -> list[tuple[str, Any]]:
    attributes = value.attributes()
    result: list[tuple[str, Any]] = []
    if attributes is not None and all(isinstance(attributes.get(k), dict) for k in _MODULE_KEYS):
        for key in ("_parameters", "_buffers"):
            result += [(name, t) for name, t in attributes[key].items() if t is not None]
        named = {id(t) for _, t in result}  # an LSTM's _flat_weights repeats its parameters
        result += list(attributes["_modules"].items())
        result += [(name, v) for name, v in attributes.items()
                   if name not in _MODULE_KEYS and _shown_attribute(str(name), v, named)]
        return result
    scripted = value.module.startswith("__torch__")
    if attributes is not None:
        result += [(str(name), v) for name, v in attributes.items()
                   if not scripted or _shown_attribute(str(name), v)]
    elif scripted:  # a TorchScript class's __getstate__ result
        result += _state_children(value.state)
    elif value.state is not None:
        result.append(("state", value.state))
    if value.args:
        result.append(("args", value.args))
    result += [(str(index), item) for index, item in enumerate(value.items)]
    result += [(str(key), item) for key, item in value.entries]
    return result


def _shown_attribute(name: str, value: Any, named: frozenset[int] | set[int] = frozenset()
                     ) -> bool:
    """A module's public attributes, and its private ones that hold a tensor not already named
    (by ``id`` in ``named``): torch keeps tensors there too (a scripted model's ``_model``,
    quantized Linear's ``_packed_params``)."""
    if name[:1] != "_":
        return name not in _HIDDEN_MODULE_ATTRIBUTES
    if not value or type(value) in _PLAIN_TYPES:
        return False  # the usual private attributes: flags, names, empty hook dicts
    return holds_tensor(value, named)


def holds_tensor(value: Any, excluded: frozenset[int] | set[int] = frozenset(),
                 limit: int = 100_000) -> bool:
    """Whether a tensor (other than those whose ``id`` is in ``excluded``) lies anywhere under
    ``value``, looking at no more than ``limit`` objects, and never twice at one."""
    stack, seen = [value], set()
    while stack and len(seen) < limit:
        item = stack.pop()
        if isinstance(item, TensorRef):
            if id(item) in excluded:
                continue
            return True
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, dict | list | tuple | Namespace | Opaque | ScriptObject | ConfigNode
                      | ScriptArchive):
            stack += [child for _, child in children(item) or ()]
    return False


class SameAs:
    """A container reached again by another path: shown once, at its first path. Expanding it
    at every path could cost exponential time (a pickle can nest shared lists 30 deep)."""

    __slots__ = ("path",)

    def __init__(self, path: tuple[str, ...]) -> None:
        self.path = path

    def __repr__(self) -> str:
        return f"<same object as {'.'.join(self.path) or '(root)'}>"


_CONTAINERS = (dict, list, tuple, Namespace, Opaque, ScriptObject, ConfigNode, ScriptArchive,
               DataRecord)
_UNSEEN = object()


class _Leave(NamedTuple):
    """Stack marker: the walk leaves the container with this id."""

    key: int


def walk(root: Any, limits: Limits = DEFAULT_LIMITS) -> Iterator[Leaf]:
    """Depth-first, in the pickle's order. Each container is expanded once: a cycle ends at the
    repeated object, another path to it is a :class:`SameAs` leaf. Tensors (leaves) are listed
    at every path that reaches them, as ``state_dict()`` names tied weights."""
    stack: list[Any] = [((), root)]
    first_paths: dict[int, tuple[str, ...] | None] = {}
    keep: list[Any] = []  # what first_paths names stays alive, so that no id is reused
    on_path: set[int] = set()
    visited = 0
    while stack:
        item = stack.pop()
        if type(item) is _Leave:
            on_path.discard(item.key)
            continue
        path, value = item
        visited += 1
        if visited > limits.max_objects:
            raise LimitExceeded(f"more than {limits.max_objects} objects in the tree "
                                "(limit max_objects)")
        if not isinstance(value, _CONTAINERS):
            yield Leaf(path, value)
            continue
        key = id(value)
        if key in on_path:
            yield Leaf(path, "<cycle>")
            continue
        first = first_paths.get(key, _UNSEEN)
        if first is not _UNSEEN:
            yield Leaf(path, value if first is None else SameAs(first))
            continue
        too_many = isinstance(value, dict | list | tuple) and visited + len(value) > (
            limits.max_objects)
        if too_many and (isinstance(value, dict) or not _is_scalar_sequence(value)):
            raise LimitExceeded(f"more than {limits.max_objects} objects in the tree "
                                "(limit max_objects)")  # before naming ten million children
        named = children(value)
        first_paths[key] = None if named is None else path
        keep.append(value)
        if named is None:
            yield Leaf(path, value)
            continue
        if len(path) >= limits.max_depth:
            raise LimitExceeded(f"the object tree nests deeper than {limits.max_depth} "
                                "(limit max_depth)")
        if not named and path:
            yield Leaf(path, value)
        on_path.add(key)
        stack.append(_Leave(key))
        stack.extend((((*path, name), child) for name, child in reversed(named)))


def instances_of(root: Any, kind: type, limit: int = 1_000_000) -> list[Any]:
    """Every object of type ``kind`` under ``root``, each once (looking at ``limit`` objects at
    most): where a tree walk would name paths, this only finds."""
    found, stack, seen = [], [root], set()
    while stack and len(seen) < limit:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, kind):
            found.append(item)
        if isinstance(item, _CONTAINERS):
            stack += [child for _, child in children(item) or ()]
    return found


def named_tensors(root: Any, limits: Limits = DEFAULT_LIMITS) -> list[tuple[str, TensorRef]]:
    return [(leaf.name, leaf.value) for leaf in walk(root, limits) if leaf.is_tensor]
