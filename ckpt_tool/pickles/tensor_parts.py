"""Tensors torch pickles as several parts: nested tensors (strided and jagged) and DTensors.

Each becomes ONE :class:`TensorRef`: a nested tensor lists its parts as ``components`` (convert
refuses it: safetensors holds dense tensors), a DTensor is its local part, with the global shape,
placements and mesh in a :class:`Sharding`. Nothing here imports torch.
"""

from __future__ import annotations

import math
from typing import Any

from ckpt_tool.model.checkpoint import Sharding, TensorRef
from ckpt_tool.model.objects import Opaque

DTENSOR_TYPES = frozenset({
    "torch.distributed.tensor.DTensor",  # torch >= 2.5 (the class's __module__)
    "torch.distributed.tensor._api.DTensor",
    "torch.distributed._tensor.api.DTensor",  # torch 2.1 - 2.4
    "torch.distributed._tensor.DTensor",
})


def rebuild_nested_tensor(buffer: Any, sizes: Any, strides: Any, offsets: Any) -> TensorRef:
    """``torch._utils._rebuild_nested_tensor``: a strided nested tensor is a flat buffer plus
    the size, stride and offset of each component (one row of ``sizes`` per component)."""
    parts = {"buffer": buffer, "sizes": sizes, "strides": strides, "storage_offsets": offsets}
    if not all(isinstance(part, TensorRef) for part in parts.values()) or len(sizes.shape) != 2:
        raise TypeError("nested tensor parts")
    count, dims = sizes.shape
    return _nested(buffer, parts, "strided", (count, *([None] * dims)), False)


def rebuild_jagged(kwargs: Any) -> TensorRef:
    """``torch.nested._internal.nested_tensor._rebuild_njt``: a jagged tensor is its ``values``
    (the components joined along the ragged dimension) and the ``offsets`` where each starts."""
    if not isinstance(kwargs, dict):
        raise TypeError("jagged tensor")
    values, offsets, lengths = kwargs.get("values"), kwargs.get("offsets"), kwargs.get("lengths")
    ragged = kwargs.get("_ragged_idx", 1)
    if not isinstance(values, TensorRef) or not isinstance(offsets, TensorRef) or not (
            type(ragged) is int and 1 <= ragged <= len(values.shape)) or len(offsets.shape) != 1:
        raise TypeError("jagged tensor parts")
    parts = {"values": values, "offsets": offsets}
    if isinstance(lengths, TensorRef):
        parts["lengths"] = lengths
    inner = tuple(None if i == ragged - 1 else n for i, n in enumerate(values.shape))
    shape = (max(offsets.shape[0] - 1, 0), *inner)
    return _nested(values, parts, "jagged", shape, kwargs.get("requires_grad") is True)


def _nested(values: TensorRef, parts: dict[str, TensorRef], layout: str,
            nested_shape: tuple[int | None, ...], requires_grad: bool) -> TensorRef:
    """``shape`` is what torch's ``size(0)`` gives (the component count) and ``numel`` the
    elements of the values: the ragged sizes are tensor bytes, which inspect does not read."""
    tensor = TensorRef(values.dtype, (nested_shape[0] or 0,), (), 0, None, requires_grad,
                       kind="nested", layout=layout, device_override=values.device,
                       extra={"components": parts, "nested_shape": nested_shape})
    tensor.numel = values.numel
    return tensor


def as_dtensor(wrapper: TensorRef, state: Any) -> TensorRef | None:
    """A DTensor pickles as a wrapper with the global shape and, in its state, ``_local_tensor``
    (this rank's part, whose bytes are in the file) and ``_spec`` (mesh, placements). Returns
    the local part, described, or None when the state is not that shape."""
    slots = _state_fields(state)
    local, spec = slots.get("_local_tensor"), slots.get("_spec")
    if not isinstance(local, TensorRef) or local.kind not in ("tensor", "parameter"):
        return None
    spec_fields = (spec.attributes() if isinstance(spec, Opaque) else None) or {}
    placements = spec_fields.get("placements")
    mesh = spec_fields.get("mesh")
    mesh_fields = (mesh.attributes() if isinstance(mesh, Opaque) else None) or {}
    local.kind = "dtensor"
    local.requires_grad = local.requires_grad or wrapper.requires_grad
    local.set_extra("sharding", Sharding(
        global_shape=wrapper.shape,
        placements=tuple(_placement_text(p) for p in placements)
        if isinstance(placements, tuple | list) else (),
        mesh_shape=_mesh_shape(mesh_fields),
        mesh_dim_names=_strings(_first(mesh_fields, "_mesh_dim_names", "mesh_dim_names")),
        mesh_device=_text(_first(mesh_fields, "_device_type", "device_type")),
        coordinate=_ints(mesh_fields.get("_coordinate_on_dim")),
        rank=_first(mesh_fields, "_rank") if type(mesh_fields.get("_rank")) is int else None,
    ))
    return local


def _state_fields(state: Any) -> dict[str, Any]:
    """A pickled object's state as one dict: ``__dict__``, or ``(__dict__, slots)``."""
    if isinstance(state, dict):
        return state
    if isinstance(state, tuple) and len(state) == 2:
        merged = dict(state[0]) if isinstance(state[0], dict) else {}
        if isinstance(state[1], dict):
            merged.update(state[1])
        return merged
    return {}


def _placement_text(placement: Any) -> str:
    if not isinstance(placement, Opaque):
        return repr(placement)
    fields = placement.attributes() or {}
    inner = ", ".join(f"{key}={value}" for key, value in fields.items()
                      if isinstance(value, int | str | float | bool))
    return f"{placement.qualname}({inner})"


def _mesh_shape(fields: dict[str, Any]) -> tuple[int, ...] | None:
    """torch <= 2.8 keeps the mesh as a tensor of ranks (``mesh``); later torch keeps a layout
    whose axes each span ``prod(shape)`` ranks."""
    mesh = fields.get("mesh")
    if isinstance(mesh, TensorRef):
        return mesh.shape
    layout = fields.get("_layout")
    axes = (layout.attributes() or {}).get("axes") if isinstance(layout, Opaque) else None
    if isinstance(axes, tuple) and all(isinstance(axis, Opaque) for axis in axes):
        shapes = [(axis.attributes() or {}).get("shape") for axis in axes]
        if all(isinstance(s, tuple) and all(type(n) is int for n in s) for s in shapes):
            return tuple(math.prod(s) for s in shapes)
    return None


def _first(fields: dict[str, Any], *names: str) -> Any:
    return next((fields[name] for name in names if name in fields), None)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _strings(value: Any) -> tuple[str, ...] | None:
    ok = isinstance(value, tuple | list) and all(isinstance(v, str) for v in value)
    return tuple(value) if ok else None


def _ints(value: Any) -> tuple[int, ...] | None:
    ok = isinstance(value, tuple | list) and all(type(v) is int for v in value)
    return tuple(value) if ok else None
