"""Plan a conversion to safetensors: which tensors under which names, in which dtype, and the
metadata. Pure: reads the neutral model, never the tensor bytes.

Tied weights mirror safetensors' own ``convert.py`` (``_remove_duplicate_names``): safetensors
forbids two names for one storage region, so one name is kept and every other name is recorded in
``__metadata__`` as ``{dropped_name: kept_name}``. Views of different regions of one storage
(slices, transposes) are not aliases: each is written as its own contiguous data.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ckpt_tool.convert.options import CastTo, ConvertOptions
from ckpt_tool.convert.roots import LeftOut, select
from ckpt_tool.errors import ConversionError
from ckpt_tool.model.checkpoint import Checkpoint, Format, TensorRef
from ckpt_tool.model.chunks import coverage_problem
from ckpt_tool.model.dtypes import BY_NAME, DType
from ckpt_tool.model.record import Record
from ckpt_tool.model.values import to_json

RESERVED_NAME = "__metadata__"
FORMAT_KEY = "format"
FORMAT_VALUE = "pt"
METADATA_VALUE_LIMIT = 64 * 1024
"""Longest JSON text kept for one value (safetensors headers are read whole)."""
CASTABLE = frozenset({"float16", "bfloat16", "float32", "float64"})
"""``--dtype`` casts these; float8 and other packed formats keep their dtype."""


class Entry(Record):
    """One tensor to write; ``dtype``: the output's, the tensor's own or the ``--dtype`` cast."""

    __slots__ = ("dtype", "name", "source_name", "tensor")

    def __init__(self, name: str, source_name: str, tensor: TensorRef, dtype: DType) -> None:
        self.name, self.source_name, self.tensor, self.dtype = name, source_name, tensor, dtype

    @property
    def nbytes(self) -> int:
        return self.tensor.numel * self.dtype.itemsize

    @property
    def is_cast(self) -> bool:
        return self.dtype is not self.tensor.dtype


class Skipped(Record):
    __slots__ = ("name", "reason")

    def __init__(self, name: str, reason: str) -> None:
        self.name, self.reason = name, reason


class Plan(Record):
    """``aliases``: dropped name -> kept name, for tied weights."""

    __slots__ = ("aliases", "entries", "left_out", "metadata", "notes", "root", "skipped")

    def __init__(self, entries: list[Entry], metadata: dict[str, str], root: str,
                 aliases: dict[str, str] | None = None, skipped: list[Skipped] | None = None,
                 left_out: list[LeftOut] | None = None, notes: list[str] | None = None) -> None:
        self.entries, self.metadata, self.root = entries, metadata, root
        self.aliases = {} if aliases is None else aliases
        self.skipped = [] if skipped is None else skipped
        self.left_out = [] if left_out is None else left_out
        self.notes = [] if notes is None else notes

    @property
    def total_bytes(self) -> int:
        return sum(entry.nbytes for entry in self.entries)


def plan_safetensors(checkpoint: Checkpoint, options: ConvertOptions) -> Plan:
    selection = select(checkpoint.root, options.key, options.all_tensors,
                       options.include_optimizer, options.limits)
    plan = Plan([], {}, selection.description, left_out=selection.left_out)
    named = rename_all([name for name, _ in selection.tensors], options)
    candidates = []
    compressed = compressed_records(checkpoint)
    for (source_name, tensor), name in zip(selection.tensors, named, strict=True):
        reason = unsupported_reason(tensor, compressed)
        if reason is None:
            candidates.append((name, source_name, tensor))
        elif options.skip_unsupported:
            plan.skipped.append(Skipped(name, reason))
        else:
            raise ConversionError(f"tensor {source_name}: {reason}; or pass --skip-unsupported "
                                  "to leave it out")
    kept, plan.aliases = fold_aliases(candidates, options.copy_shared)
    plan.entries = [Entry(name, source_name, tensor, entry_dtype(tensor, options.cast))
                    for name, source_name, tensor in kept]
    if not plan.entries:
        raise ConversionError("no tensors to convert" + _why_none(plan))
    plan.metadata = build_metadata(checkpoint, selection.values, plan)
    plan.notes += _cast_notes(plan.entries, options.cast)
    return plan


def _why_none(plan: Plan) -> str:
    if plan.skipped:
        return f" ({len(plan.skipped)} unsupported tensors were left out)"
    if plan.left_out:
        return f" under {plan.root} (see --key, --all, --include-optimizer)"
    return ""


def compressed_records(checkpoint: Checkpoint) -> frozenset[str]:
    """Storage records stored deflated (torch never writes them so; another zip tool did)."""
    prefix = f"{checkpoint.archive_name}/"
    return frozenset(member.name.removeprefix(prefix) for member in checkpoint.members
                     if member.method != 0)


def unsupported_reason(tensor: TensorRef, compressed: frozenset[str] = frozenset()) -> str | None:
    """Why safetensors cannot hold this tensor, saying what to do; None when it can."""
    if tensor.extra and tensor.extra.get("unsupported"):
        return str(tensor.extra["unsupported"])
    if tensor.kind == "sparse":
        return (f"a sparse tensor ({tensor.layout}); safetensors holds dense tensors only: make "
                "it dense with .to_dense() before saving")
    if tensor.kind == "quantized":
        return (f"a quantized tensor ({tensor.dtype.name}); safetensors has no quantized dtypes: "
                "dequantize it with .dequantize() before saving")
    if tensor.kind == "nested":
        parts = ", ".join(tensor.extra.get("components", {}))
        return (f"a nested tensor ({tensor.layout} layout, stored as {parts}); safetensors holds "
                "dense tensors only: pad it with .to_padded_tensor() or save its parts as "
                "separate tensors")
    if not tensor.is_whole:
        return _shard_reason(tensor)
    if tensor.kind == "meta":
        return "a meta tensor: it has a shape but no data"
    if tensor.chunks:
        return _chunks_reason(tensor)
    if tensor.extra.get("pickled_in"):
        return (f"a tensor subclass that torch.export pickled whole in {tensor.extra['pickled_in']}"
                "; safetensors holds plain tensors: save its inner tensors instead")
    if tensor.storage is None or tensor.offset is None:
        what = tensor.extra.get("type", tensor.kind)
        return f"a {what} tensor whose data is not a storage in the file"
    if tensor.storage.record in compressed:
        return (f"its storage {tensor.storage.record} is compressed in the zip (torch.save "
                "stores data uncompressed; another tool rewrote the file): load it with torch "
                "and save it again")
    if tensor.dtype.safetensors is None:
        return f"dtype {tensor.dtype.name} has no safetensors equivalent"
    return None


def _chunks_reason(tensor: TensorRef) -> str | None:
    problem = coverage_problem(tensor)
    if problem is not None:
        return (f"saved in {len(tensor.chunks)} pieces, but {problem}: the checkpoint is "
                "incomplete or damaged")
    if any(chunk.tensor.offset is None for chunk in tensor.chunks if chunk.tensor.numel):
        return "a piece of it has no bytes in its file"
    if tensor.dtype.safetensors is None:
        return f"dtype {tensor.dtype.name} has no safetensors equivalent"
    return None


def _shard_reason(tensor: TensorRef) -> str:
    sharding = tensor.sharding
    assert sharding is not None
    rank = f"rank {sharding.rank}'s" if sharding.rank is not None else "one rank's"
    return (f"a DTensor of which this file holds only {rank} part ({list(tensor.shape)} of "
            f"{list(sharding.global_shape)}, placements {', '.join(sharding.placements)}); "
            "convert the folder holding every rank's file, which merges them")


def rename_all(names: list[str], options: ConvertOptions) -> list[str]:
    """Apply --strip-prefix then --rename; refuse empty or colliding results."""
    try:
        renames = [(re.compile(pattern), replacement) for pattern, replacement in options.renames]
    except re.error as exc:
        raise ConversionError(f"--rename: bad regular expression: {exc}") from None
    result: list[str] = []
    seen: dict[str, str] = {}
    for original in names:
        name = original
        for prefix in options.strip_prefixes:
            name = name.removeprefix(prefix)
        for pattern, replacement in renames:
            name = _substitute(pattern, replacement, name)
        if not name or name == RESERVED_NAME:
            raise ConversionError(f"tensor {original!r} would be named {name!r}, which "
                                  "safetensors cannot hold; give it another with --rename")
        if name in seen:
            raise ConversionError(f"tensors {seen[name]} and {original} would both be named "
                                  f"{name}; change --strip-prefix/--rename")
        seen[name] = original
        result.append(name)
    return result


def _substitute(pattern: re.Pattern[str], replacement: str, name: str) -> str:
    try:
        return pattern.sub(replacement, name)
    except (re.error, IndexError) as exc:
        raise ConversionError(f"--rename {pattern.pattern}={replacement}: {exc}") from None


def _region(tensor: TensorRef) -> tuple[Any, ...]:
    """What makes two names one tensor: the same storage region, or, for a tensor made of
    pieces (no storage of its own), the same tensor."""
    if tensor.storage is None:
        return ("tensor", id(tensor))
    return (id(tensor.storage), tensor.storage_offset, tensor.shape, tensor.stride,
            tensor.dtype.name)


def fold_aliases(
    candidates: list[tuple[str, str, TensorRef]], copy_shared: bool
) -> tuple[list[tuple[str, str, TensorRef]], dict[str, str]]:
    """Keep the first name of each storage region; map the others to it (unless copying)."""
    if copy_shared:
        return candidates, {}
    kept: list[tuple[str, str, TensorRef]] = []
    aliases: dict[str, str] = {}
    # By storage: its first candidate, then, once a second tensor views it, its regions. Most
    # storages hold one tensor, whose region is never built (a key of five values for each of
    # 200,000 tensors was 40 MB at convert's peak).
    storages: dict[int, Any] = {}
    for candidate in candidates:
        name, _, tensor = candidate
        owner = id(tensor.storage) if tensor.storage is not None else id(tensor)
        regions = storages.get(owner)
        if regions is None:
            storages[owner] = candidate
            kept.append(candidate)
            continue
        if type(regions) is tuple:  # the second tensor of this storage
            first_name, _, first_tensor = regions
            regions = storages[owner] = {_region(first_tensor): first_name}
        region = _region(tensor)
        if tensor.numel and region in regions:
            aliases[name] = regions[region]
            continue
        regions.setdefault(region, name)
        kept.append(candidate)
    return kept, aliases


def entry_dtype(tensor: TensorRef, cast: CastTo | None) -> DType:
    """``--dtype`` when given; else the dtype the producer's own consolidation writes (a ZeRO
    buffer saved in bf16 becomes float32, as zero_to_fp32.py makes it); else its own."""
    consolidated = tensor.extra.get("consolidated_dtype") if tensor.extra else None
    if cast is None and isinstance(consolidated, str) and tensor.dtype.name in CASTABLE:
        return BY_NAME[consolidated]
    return output_dtype(tensor.dtype, cast)


def output_dtype(dtype: DType, cast: CastTo | None) -> DType:
    if cast is None or dtype.name not in CASTABLE:
        return dtype
    return BY_NAME[cast.dtype_name]


def _cast_notes(entries: list[Entry], cast: CastTo | None) -> list[str]:
    if cast is None:
        consolidated = [e.name for e in entries if e.is_cast]
        if not consolidated:
            return []
        shown = ", ".join(consolidated[:5]) + (" ..." if len(consolidated) > 5 else "")
        return [f"cast {len(consolidated)} tensors as the producer's own consolidation does "
                f"({shown}; --dtype overrides)"]
    cast_count = sum(entry.is_cast for entry in entries)
    kept = sorted({e.dtype.name for e in entries if not e.is_cast and e.dtype.is_floating
                   and e.dtype.name not in CASTABLE})
    notes = [f"cast {cast_count} tensors to {cast.dtype_name}"]
    if kept:
        notes.append(f"kept {', '.join(kept)} tensors as they are (--dtype casts 16/32/64-bit "
                     "floats only)")
    return notes


def build_metadata(checkpoint: Checkpoint, values: list[tuple[str, Any]],
                   plan: Plan) -> dict[str, str]:
    """``format: pt``, then tied-weight aliases, then the file's own values as JSON text.

    A value whose text is a tensor's name is left out: by safetensors' convention a metadata
    entry ``{name: tensor_name}`` says that ``name`` is tied to that tensor.
    """
    metadata = {FORMAT_KEY: FORMAT_VALUE}
    if checkpoint.format is Format.SAFETENSORS and checkpoint.safetensors_metadata:
        metadata.update(checkpoint.safetensors_metadata)
    for alias, kept in plan.aliases.items():
        if alias in metadata:
            plan.notes.append(f"alias {alias} -> {kept} not recorded: the metadata key is taken")
        else:
            metadata[alias] = kept
    # Aliases are tensor names too: a value "0" beside an alias "0" would read as a second tie.
    tensor_names = {entry.name for entry in plan.entries} | set(plan.aliases)
    for name, value in values:
        text = metadata_text(value)
        if name in metadata:
            plan.notes.append(f"value {name} not kept: the metadata key is taken")
        elif text in tensor_names and name not in tensor_names:
            plan.notes.append(f"value {name} not kept: its text {text!r} is a tensor name, which "
                              "would read as a tied weight")
        elif len(text) > METADATA_VALUE_LIMIT:
            plan.notes.append(f"value {name} not kept: {len(text)} characters of JSON "
                              f"(limit {METADATA_VALUE_LIMIT})")
        else:
            metadata[name] = text
    return metadata


def metadata_text(value: Any) -> str:
    """A string as it is; any other value as JSON (``90``, ``0.1``, ``true``, ``[1, 2]``)."""
    if isinstance(value, str):
        return value
    return json.dumps(to_json(value), ensure_ascii=False)
