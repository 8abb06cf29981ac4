"""Convert one file: read it, pick the route for the target, stage, verify, commit."""

from __future__ import annotations

import os

from ckpt_tool.containers.remote import is_url
from ckpt_tool.convert.atomic import (
    Staging,
    check_destination,
    check_folder,
    check_free_space,
    is_temporary,
    name_destination,
)
from ckpt_tool.convert.options import Action, ConvertOptions, ConvertResult, Target
from ckpt_tool.convert.plan import Plan, plan_safetensors
from ckpt_tool.convert.progress import Label, Meter, Report
from ckpt_tool.convert.shards import DEFAULT_SHARD_SIZE, ShardNames, split_shards
from ckpt_tool.errors import CkptError, ConversionError
from ckpt_tool.extras import numpy_missing, require_numpy
from ckpt_tool.model.checkpoint import Checkpoint, Format
from ckpt_tool.readers import open_checkpoint

_MAX_LISTED = 5


def convert_file(source: str, dest: str, options: ConvertOptions,
                 report: Report | None = None, label: Label | None = None) -> ConvertResult:
    """Convert ``source`` (a file, a folder that is one model, an index, or a URL of one) to
    ``dest``; failures come back as a result with ``error`` set."""
    meter = Meter(report, on_label=label)
    if not is_url(source) and not os.path.isfile(source) and not os.path.isdir(source):
        return ConvertResult(source, error="no such file or folder")
    try:
        _check_before_reading(source, dest, options)
        checkpoint = open_checkpoint(source, options.limits)
        result = _convert(checkpoint, dest, options, meter)
    except CkptError as exc:
        return ConvertResult(source, error=name_destination(str(exc), dest))
    except OSError as exc:
        return ConvertResult(source, error=_os_error(exc, dest))
    meter.finish()
    return result


def _check_before_reading(source: str, dest: str, options: ConvertOptions) -> None:
    """What can be refused without reading the source (seconds for 200,000 tensors): a missing
    folder; for a torch target, whose one output is ``dest``, any bad destination. A safetensors
    output's file names depend on the shards, known once the source is read."""
    if options.target.is_torch and os.path.isfile(source):
        check_destination(dest, [source], options.force)
    else:
        check_folder(dest)


def _os_error(exc: OSError, dest: str) -> str:
    """The error with the path the user knows: the destination, never the temporary file (or
    unnamed ``O_TMPFILE``) it was being written to."""
    reason = exc.strerror or str(exc)
    if exc.filename is None or is_temporary(str(exc.filename)):
        return f"writing {dest} failed: {reason}"
    return f"{reason}: {exc.filename}"


def _folder(dest: str) -> str:
    return os.path.dirname(dest) or "."


def _convert(checkpoint: Checkpoint, dest: str, options: ConvertOptions,
             meter: Meter) -> ConvertResult:
    if options.target is Target.SAFETENSORS:
        return _to_safetensors(checkpoint, dest, options, meter)
    if checkpoint.files or is_url(checkpoint.path):
        what = "a model in several files" if checkpoint.files else "a remote file"
        raise ConversionError(f"{what} converts --to safetensors only (torch targets copy, move "
                              "or rewrite one local file)")
    if checkpoint.format is Format.SAFETENSORS:
        return _to_torch_save(checkpoint, dest, options, meter)
    if not checkpoint.format.opened_by_torch_load:
        raise ConversionError(f"a {checkpoint.format.value} checkpoint is not a torch.save file: "
                              "torch.load cannot open it under any name; --to safetensors "
                              "converts its tensors")
    if options.move:
        from ckpt_tool.convert.copy import move_file

        move_file(checkpoint.path, dest, options.force, options.verify, meter)
        return ConvertResult(checkpoint.path, (dest,), Action.MOVE, bytes_written=checkpoint.size)
    if options.rewrite and checkpoint.format is Format.TORCH_LEGACY:
        return _rewrite(checkpoint, dest, options, meter)
    return _copy(checkpoint, dest, options, meter)


def _to_safetensors(checkpoint: Checkpoint, dest: str, options: ConvertOptions,
                    meter: Meter) -> ConvertResult:
    if options.move or options.rewrite:
        raise ConversionError("--move and --rewrite apply to --to pt/pth.tar/pwf/bin/ckpt")
    plan = plan_safetensors(checkpoint, options)
    _require_numpy_if_built(plan, checkpoint)
    shard_size = options.shard_size
    if shard_size is None and checkpoint.files:
        shard_size = DEFAULT_SHARD_SIZE
    names = ShardNames(dest)
    sources = tuple(checkpoint.files) or (checkpoint.path,)
    for path in names.all(len(split_shards(plan.entries, shard_size))):
        check_destination(path, list(sources), options.force)
    check_free_space(dest, plan.total_bytes)
    from ckpt_tool.convert.to_safetensors import write_safetensors  # each route imports its own

    with Staging(_folder(dest), options.force, sources) as staging:
        write_safetensors(checkpoint, plan, names, staging, shard_size, options.verify, meter)
        outputs = staging.commit()
    return ConvertResult(checkpoint.path, tuple(outputs), Action.SAFETENSORS, len(plan.entries),
                         plan.total_bytes, plan.root, tuple(plan_notes(plan)))


def _require_numpy_if_built(plan: Plan, checkpoint: Checkpoint) -> None:
    """Bytes copied as they are need nothing installed; a tensor built in blocks (strided,
    byte-swapped, cast, chunks that are not whole rows) needs numpy: say so before writing."""
    if not numpy_missing():
        return
    from ckpt_tool.convert.pieces import byte_runs, pieces_of

    for entry in plan.entries:
        pieces = pieces_of(entry.tensor, checkpoint.path)
        if byte_runs(entry, pieces, checkpoint.byteorder) is None:
            why = ("cast to " + entry.dtype.name if entry.is_cast
                   else "big-endian" if checkpoint.byteorder == "big"
                   else "not one contiguous range of its file")
            require_numpy(f"converting tensor {entry.name} ({why})")


def plan_notes(plan: Plan) -> list[str]:
    """What the report says besides the counts: left out, tied, skipped, cast, metadata."""
    notes = []
    for part in plan.left_out:
        how = ("training state; --include-optimizer keeps it" if part.training_state
               else f"--key {part.name} or --all converts it")
        notes.append(f"left out {part.name}: {part.tensors} tensors ({how})")
    notes += _listed("tied weights, one copy written, the other names recorded in the metadata "
                     "(--copy-shared writes each)",
                     [f"{alias} -> {kept}" for alias, kept in plan.aliases.items()])
    notes += _listed("skipped unsupported tensors",
                     [f"{item.name}: {item.reason}" for item in plan.skipped], limit=None)
    notes += plan.notes
    return notes


def _listed(title: str, items: list[str], limit: int | None = _MAX_LISTED) -> list[str]:
    if not items:
        return []
    shown = items if limit is None else items[:limit]
    more = f" and {len(items) - len(shown)} more" if len(items) > len(shown) else ""
    return [f"{title}: {'; '.join(shown)}{more}"]


def _staged(checkpoint: Checkpoint, dest: str, options: ConvertOptions) -> Staging:
    check_destination(dest, [checkpoint.path], options.force)
    check_free_space(dest, checkpoint.size)
    return Staging(_folder(dest), options.force, (checkpoint.path,))


def _copy(checkpoint: Checkpoint, dest: str, options: ConvertOptions,
          meter: Meter) -> ConvertResult:
    from ckpt_tool.convert.copy import copy_file

    with _staged(checkpoint, dest, options) as staging:
        copy_file(checkpoint.path, dest, staging, options.verify, meter)
        outputs = staging.commit()
    notes = []
    if checkpoint.format is Format.TORCH_LEGACY:
        notes.append("still the legacy (pre-1.6) format: --rewrite turns it into the zip format "
                     "that torch.load(mmap=True) can map")
    elif options.rewrite:
        notes.append(f"already {checkpoint.format.value}: copied as it is")
    return ConvertResult(checkpoint.path, tuple(outputs), Action.COPY,
                         bytes_written=checkpoint.size, notes=tuple(notes))


def _rewrite(checkpoint: Checkpoint, dest: str, options: ConvertOptions,
             meter: Meter) -> ConvertResult:
    from ckpt_tool.convert.legacy_rewrite import rewrite_legacy

    with _staged(checkpoint, dest, options) as staging:
        rewrite_legacy(checkpoint, dest, staging, options.verify, meter)
        outputs = staging.commit()
    size = sum(storage.nbytes for storage in checkpoint.storages.values())
    return ConvertResult(checkpoint.path, tuple(outputs), Action.REWRITE,
                         len(checkpoint.storages), size)


def _to_torch_save(checkpoint: Checkpoint, dest: str, options: ConvertOptions,
                   meter: Meter) -> ConvertResult:
    if options.move or options.rewrite:
        raise ConversionError("a safetensors file is not a torch.save file: it is converted "
                              "with torch.save, never moved or rewritten")
    from ckpt_tool.convert.from_safetensors import safetensors_to_torch

    with _staged(checkpoint, dest, options) as staging:
        notes = safetensors_to_torch(checkpoint, dest, staging, options.verify, meter)
        outputs = staging.commit()
    tensors = len(checkpoint.storages)
    return ConvertResult(checkpoint.path, tuple(outputs), Action.TORCH_SAVE, tensors,
                         checkpoint.size, notes=tuple(notes))
