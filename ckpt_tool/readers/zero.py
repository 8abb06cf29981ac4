"""A DeepSpeed ZeRO checkpoint folder read as one model: the fp32 master weights rebuilt from
the ranks' flat partitions, as the ``zero_to_fp32.py`` DeepSpeed copies beside each checkpoint
rebuilds them (``_get_fp32_state_dict_from_zero_checkpoint``), without running it.

The folder holds ``latest`` (the tag) and the tag's folder (``global_stepN``) with
``*_model_states.pt`` (buffers, ``param_shapes``, ``shared_params``, frozen parameters) and one
``*_optim_states.pt`` per data-parallel rank, whose ``optimizer_state_dict`` holds the flat fp32
partitions:

- ZeRO 1 and 2, ``single_partition_of_fp32_groups``: per parameter group, the ranks' partitions
  end to end are one vector; the group's parameters lie in it in ``param_shapes`` order, each
  ``numel`` elements, then its ``param_alignment_paddings`` entry when there is one.
- ZeRO 3, ``fp32_flat_groups``: every parameter is cut into ``ceil(numel / world)`` elements per
  rank (the last rank padded); a rank's groups end to end hold its cut of each parameter in
  ``param_shapes`` order (all groups merged).

The model is the buffers, the frozen parameters, then the trainable ones (each a tensor whose
chunks are flat slices of the partitions), then ``shared_params`` as second names of their
targets: zero_to_fp32's order. zero_to_fp32 writes every floating tensor as float32 (a bf16
buffer too); each says so in ``extra["consolidated_dtype"]``, which convert follows.
"""

from __future__ import annotations

import math
import re
from typing import Any

from ckpt_tool.containers.locations import base_name, exists, join, list_folder, read_small
from ckpt_tool.errors import FormatError
from ckpt_tool.limits import Limits
from ckpt_tool.model.checkpoint import Checkpoint, Chunk, Format, TensorRef
from ckpt_tool.model.objects import Opaque
from ckpt_tool.readers.dcp import contiguous_stride
from ckpt_tool.readers.parts import combine, read_part

LATEST = "latest"
MODEL_STATES = re.compile(r".*_model_states\.pt")
OPTIM_STATES = re.compile(r".*_optim_states\.pt")
CONSOLIDATED_DTYPE = "float32"
AUTOEP_LAYERS_KEY, AUTOEP_LAYERS_KEY_LEGACY = "ds_autoep_layers", "autoep_layers"
"""deepspeed/checkpoint/constants.py: zero_to_fp32 refuses AutoEP ZeRO-3 partitioned experts."""


def natural_key(name: str) -> list[Any]:
    """zero_to_fp32's ``natural_keys``: digits compare as numbers (rank 10 after rank 9)."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def is_zero_folder(names: list[str]) -> bool:
    """A tag folder: model states and optimizer states side by side."""
    return any(MODEL_STATES.fullmatch(n) for n in names) and any(
        OPTIM_STATES.fullmatch(n) for n in names)


def tag_folder(folder: str) -> tuple[str, str | None]:
    """The folder holding the states (the tag ``latest`` names, or ``folder`` itself), and the
    tag."""
    latest = join(folder, LATEST)
    if exists(latest):
        tag = read_small(latest).decode("utf-8", "replace").strip()
        if not tag or "/" in tag or "\\" in tag or tag in (".", ".."):
            raise FormatError(f"{LATEST} names the tag {tag!r}, not a folder beside it")
        return join(folder, tag), tag
    return folder, None


def read_zero(folder: str, limits: Limits) -> Checkpoint:
    states, tag = tag_folder(folder)
    model_names, optim_names = _state_files(states)
    models = [read_part(join(states, name), limits) for name in model_names]
    optims = [read_part(join(states, name), limits) for name in optim_names]
    stage, world, groups = _optimizer_partitions(optims)
    model = _model_state(models[0])
    root: dict[str, TensorRef] = {}
    _add_buffers(root, model)
    _add_frozen(root, model, models, stage, world)
    if stage <= 2:
        _add_zero2(root, model, groups, world, optims[0])
    else:
        _add_zero3(root, model, groups, world)
    for alias, target in _dict(model, "shared_params").items():
        if target in root:
            root[str(alias)] = root[target]
    for tensor in root.values():
        if tensor.dtype.is_floating and tensor.dtype.name != CONSOLIDATED_DTYPE:
            tensor.set_extra("consolidated_dtype", CONSOLIDATED_DTYPE)
    version = (f"ZeRO-{stage}, {world} rank{'s' if world > 1 else ''}"
               f"{f', {tag}' if tag else ''} (DeepSpeed {model.get('ds_version', '?')})")
    extra = {join(folder, LATEST): len(tag.encode()) + 1} if tag else {}
    return combine(folder, Format.DEEPSPEED_ZERO, models + optims, root, version, extra)


def _state_files(states: str) -> tuple[list[str], list[str]]:
    names = list_folder(states)
    if names is None:
        return _guess_state_files(states)
    models = sorted((n for n in names if MODEL_STATES.fullmatch(n)), key=natural_key)
    optims = sorted((n for n in names if OPTIM_STATES.fullmatch(n)), key=natural_key)
    if not models or not optims:
        raise FormatError(f"{base_name(states)} holds no *_model_states.pt and "
                          "*_optim_states.pt files")
    if any(not name.endswith("mp_rank_00_model_states.pt") for name in models):
        raise FormatError("a model-parallel ZeRO checkpoint (mp_rank_01 and up): zero_to_fp32 "
                          "merges one model-parallel rank, and so does ckpt; use DeepSpeed's "
                          "ds_to_universal.py")
    return models, optims


def _guess_state_files(states: str) -> tuple[list[str], list[str]]:
    """An HTTP folder cannot be listed: the names DeepSpeed gives them, rank 0 first
    (``mp_rank_00_model_states.pt`` for ZeRO 1-2, one ``zero_pp_rank_R_...`` per rank for 3)."""
    for prefix in ("", "bf16_"):
        optim = f"{prefix}zero_pp_rank_0_mp_rank_00_optim_states.pt"
        if exists(join(states, optim)):
            break
    else:
        raise FormatError(f"{states}: no zero_pp_rank_0_mp_rank_00_optim_states.pt (an HTTP "
                          "folder cannot be listed: is this a DeepSpeed checkpoint?)")
    world = 1
    while exists(join(states, f"{prefix}zero_pp_rank_{world}_mp_rank_00_optim_states.pt")):
        world += 1
    optims = [f"{prefix}zero_pp_rank_{r}_mp_rank_00_optim_states.pt" for r in range(world)]
    if exists(join(states, "mp_rank_00_model_states.pt")):
        return ["mp_rank_00_model_states.pt"], optims
    return [f"zero_pp_rank_{r}_mp_rank_00_model_states.pt" for r in range(world)], optims


def _dict(record: dict[str, Any], key: str) -> dict[str, Any]:
    value = record.get(key)
    return value if isinstance(value, dict) else {}


def _model_state(part: Checkpoint) -> dict[str, Any]:
    root = part.root
    if not isinstance(root, dict) or "buffer_names" not in root or "param_shapes" not in root:
        raise FormatError(f"{base_name(part.path)} is not a DeepSpeed model states file (no "
                          "buffer_names and param_shapes)")
    layers = root.get(AUTOEP_LAYERS_KEY, root.get(AUTOEP_LAYERS_KEY_LEGACY))
    if isinstance(layers, list) and any(
            isinstance(entry, dict) and entry.get("checkpoint_format") == "zero3_partitioned"
            for entry in layers):
        raise FormatError("an AutoEP ZeRO-3 checkpoint: its expert parameters are partitioned "
                          "over expert replica groups, which zero_to_fp32 does not merge either "
                          "(DeepSpeed's ds_to_universal.py does)")
    return root


def _optimizer_partitions(optims: list[Checkpoint]) -> tuple[int, int, list[list[TensorRef]]]:
    """ZeRO stage, world size, and each rank's flat fp32 groups."""
    states = []
    for part in optims:
        state = part.root.get("optimizer_state_dict") if isinstance(part.root, dict) else None
        if not isinstance(state, dict) or "zero_stage" not in state:
            raise FormatError(f"{base_name(part.path)} is not a ZeRO optimizer states file")
        states.append(state)
    stage = _int(states[0]["zero_stage"], "zero_stage")
    world = states[0].get("partition_count")
    world = max(world) if isinstance(world, list) and world else world
    if type(world) is not int or world < 1:
        raise FormatError(f"partition_count {world!r} is not a world size")
    if world != len(optims):
        raise FormatError(f"expected {world} *_optim_states.pt files (partition_count) but found "
                          f"{len(optims)}: a rank's file missing, or an older checkpoint mixed in?")
    if stage not in (1, 2, 3):
        raise FormatError(f"unknown ZeRO stage {stage}")
    key = "single_partition_of_fp32_groups" if stage <= 2 else "fp32_flat_groups"
    groups = []
    for part, state in zip(optims, states, strict=True):
        flat = state.get(key)
        if not isinstance(flat, list) or not all(_is_flat(t) for t in flat):
            raise FormatError(f"{base_name(part.path)}: no {key} of flat tensors")
        groups.append(flat)
    if len({len(flat) for flat in groups}) != 1:
        raise FormatError("the ranks' files have different numbers of parameter groups")
    return stage, world, groups


def _int(value: Any, what: str) -> int:
    """An int, or an enum member pickled as ``ZeroStageEnum(3)``."""
    if isinstance(value, Opaque) and len(value.args) == 1:
        value = value.args[0]
    if type(value) is not int:
        raise FormatError(f"{what} is {value!r}, not a number")
    return value


def _is_flat(tensor: Any) -> bool:
    return isinstance(tensor, TensorRef) and len(tensor.shape) == 1 and tensor.stride in (
        (1,), ()) and tensor.storage is not None and tensor.offset is not None


def _shape(name: str, value: Any) -> tuple[int, ...]:
    if isinstance(value, tuple | list) and all(type(n) is int and n >= 0 for n in value):
        return tuple(value)
    raise FormatError(f"param_shapes gives {name} the shape {value!r}")


def _add_buffers(root: dict[str, TensorRef], model: dict[str, Any]) -> None:
    names = model.get("buffer_names") or []
    for name, tensor in _dict(model, "module").items():
        if name in names and isinstance(tensor, TensorRef):
            root[name] = tensor


def _add_frozen(root: dict[str, TensorRef], model: dict[str, Any], models: list[Checkpoint],
                stage: int, world: int) -> None:
    shapes = _dict(model, "frozen_param_shapes")
    for name, value in shapes.items():
        shape = _shape(name, value)
        if stage <= 2:
            fragment = _dict(model, "frozen_param_fragments").get(name)
            if not isinstance(fragment, TensorRef) or fragment.shape != shape:
                raise FormatError(f"frozen parameter {name}: no fragment of shape {list(shape)}")
            root[name] = fragment
            continue
        if len(models) != world:
            raise FormatError(f"ZeRO-3 frozen parameters need {world} model states files, found "
                              f"{len(models)}")
        fragments = [_dict(_model_state(m), "frozen_param_fragments").get(name) for m in models]
        if not all(_is_flat(f) for f in fragments):
            raise FormatError(f"frozen parameter {name}: a rank's fragment is missing")
        root[name] = _concatenated(name, shape, [(f, 0, f.numel) for f in fragments])


def _concatenated(name: str, shape: tuple[int, ...], spans: list[tuple[TensorRef, int, int]]
                  ) -> TensorRef:
    """The tensor made of the ``(partition, start, count)`` slices end to end, cut at its size
    (``torch.cat(...).narrow(0, 0, numel).view(shape)``)."""
    numel = math.prod(shape)
    chunks, at = [], 0
    for partition, start, count in spans:
        count = min(count, numel - at)
        if count <= 0:
            break
        chunks.append(Chunk((at,), _slice(partition, start, count), flat=True))
        at += count
    if at != numel:
        raise FormatError(f"{name}: the partitions hold {at} of its {numel} elements")
    dtype = spans[0][0].dtype
    return TensorRef(dtype, shape, contiguous_stride(shape), requires_grad=True,
                     chunks=tuple(chunks))


def _slice(partition: TensorRef, start: int, count: int) -> TensorRef:
    if start + count > partition.numel:
        raise FormatError("a parameter runs past the end of its partition")
    return TensorRef(partition.dtype, (count,), (1,), partition.storage_offset + start,
                     partition.storage)


def _add_zero2(root: dict[str, TensorRef], model: dict[str, Any],
               groups: list[list[TensorRef]], world: int, optim: Checkpoint) -> None:
    param_shapes = model.get("param_shapes")
    if not isinstance(param_shapes, list) or len(param_shapes) != len(groups[0]):
        raise FormatError("param_shapes does not list one dict per parameter group")
    state = optim.root["optimizer_state_dict"]
    paddings = state.get("param_alignment_paddings")
    for index, shapes in enumerate(param_shapes):
        partitions = [rank_groups[index] for rank_groups in groups]
        group_paddings = paddings[index] if isinstance(paddings, list) else None
        if group_paddings is not None and len(group_paddings) != len(shapes):
            raise FormatError(f"group {index}: {len(group_paddings)} alignment paddings for "
                              f"{len(shapes)} parameters")
        offset = 0
        for position, (name, value) in enumerate(shapes.items()):
            shape = _shape(name, value)
            root[name] = _from_vector(name, shape, partitions, offset)
            offset += math.prod(shape) + (group_paddings[position] if group_paddings else 0)
        _check_consumed(index, offset, sum(p.numel for p in partitions), world)


def _from_vector(name: str, shape: tuple[int, ...], partitions: list[TensorRef],
                 offset: int) -> TensorRef:
    """``numel`` elements from ``offset`` of the partitions taken end to end."""
    spans, base, left = [], 0, math.prod(shape)
    for partition in partitions:
        start = max(offset - base, 0)
        if start < partition.numel and left > 0 and offset < base + partition.numel:
            count = min(partition.numel - start, left)
            spans.append((partition, start, count))
            left -= count
        base += partition.numel
    if left or not spans:
        if math.prod(shape) == 0:
            return TensorRef(partitions[0].dtype, shape, contiguous_stride(shape))
        raise FormatError(f"{name}: runs past the end of its group's partitions")
    return _concatenated(name, shape, spans)


def _check_consumed(group: int, offset: int, available: int, world: int) -> None:
    """zero_to_fp32's check: both sides rounded up to ``2 * world`` (ZeRO-2's alignment)."""
    align = 2 * world
    if math.ceil(offset / align) * align != math.ceil(available / align) * align:
        raise FormatError(f"group {group}: the parameters use {offset} elements of the "
                          f"{available} its partitions hold: param_shapes does not match them")


def _add_zero3(root: dict[str, TensorRef], model: dict[str, Any],
               groups: list[list[TensorRef]], world: int) -> None:
    param_shapes = model.get("param_shapes")
    if not isinstance(param_shapes, list):
        raise FormatError("param_shapes is not a list of dicts")
    shapes = {name: value for group in param_shapes if isinstance(group, dict)
              for name, value in group.items()}
    offset = 0
    for name, value in shapes.items():
        shape = _shape(name, value)
        numel = math.prod(shape)
        per_rank = math.ceil(numel / world)
        spans = [span for rank_groups in groups
                 for span in _virtual_slice(rank_groups, offset, per_rank)]
        root[name] = _concatenated(name, shape, spans) if numel else TensorRef(
            groups[0][0].dtype, shape, contiguous_stride(shape))
        offset += per_rank
    available = sum(group.numel for group in groups[0]) * world
    if offset * world != available:
        raise FormatError(f"the parameters use {offset * world} elements of the {available} the "
                          "partitions hold: param_shapes does not match them")


def _virtual_slice(rank_groups: list[TensorRef], offset: int, count: int
                   ) -> list[tuple[TensorRef, int, int]]:
    """``count`` elements from ``offset`` of one rank's groups taken end to end."""
    spans, base = [], 0
    for group in rank_groups:
        start = max(offset - base, 0)
        end = min(offset + count - base, group.numel)
        if start < end:
            spans.append((group, start, end - start))
        base += group.numel
    if sum(span[2] for span in spans) != count:
        raise FormatError("a parameter runs past the end of a rank's partitions")
    return spans
