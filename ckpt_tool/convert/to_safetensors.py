"""Write a plan as safetensors, each tensor's bytes going straight from its source pieces to
its place in the output. No torch, and no tensor assembled in memory.

Each output file is laid out first (header and every tensor's offsets, ``safetensors_layout``),
then filled in data order: a tensor whose bytes need no change is byte ranges copied by
``byte_copy.RangeCopier`` (a DCP chunk along dim 0, a ZeRO slice, a contiguous tensor: one range
each), checked as it goes by the copier's verification thread; any other is built in bounded
blocks (``assemble``, numpy), written at its offset, and checked after (``verify``) by building
its blocks again. The header is read back and checked by ``verify`` too.
"""

from __future__ import annotations

from typing import BinaryIO

from ckpt_tool.containers.remote import is_url
from ckpt_tool.convert.assemble import assembled_blocks
from ckpt_tool.convert.atomic import Staging
from ckpt_tool.convert.byte_copy import RangeCopier, check_written, preallocate, write_all
from ckpt_tool.convert.pieces import byte_runs, pieces_of
from ckpt_tool.convert.plan import Entry, Plan
from ckpt_tool.convert.progress import Meter
from ckpt_tool.convert.safetensors_layout import Layout, lay_out
from ckpt_tool.convert.shards import ShardNames, index_json, split_shards
from ckpt_tool.convert.sources import SourceFiles
from ckpt_tool.convert.verify import verify_safetensors
from ckpt_tool.model.checkpoint import Checkpoint


def write_safetensors(checkpoint: Checkpoint, plan: Plan, names: ShardNames, staging: Staging,
                      shard_size: int | None, verify: bool, meter: Meter) -> list[str]:
    """Stage the output file(s); return their final paths (index last)."""
    shards = split_shards(plan.entries, shard_size)
    files = names.files(len(shards))
    meter.grow(plan.total_bytes * (2 if verify else 1))
    with SourceFiles(checkpoint.path) as sources:
        for shard, file in zip(shards, files, strict=True):
            output = staging.open_for(file)
            layout = lay_out(shard, plan.metadata)
            built = write_file(output, layout, sources, checkpoint.byteorder, verify, meter)
            if verify:
                verify_safetensors(staging.readable_path(output), layout, plan.metadata,
                                   sources, checkpoint.byteorder, meter, built)
    if len(shards) == 1:
        return files
    index = names.index()
    staging.open_for(index).write(index_json(shards, files).encode("utf-8"))
    return [*files, index]


def write_file(output: BinaryIO, layout: Layout, sources: SourceFiles, byteorder: str,
               verify: bool, meter: Meter) -> list[int]:
    """Write the file; with ``verify``, check every copied byte. Return the indices of the
    entries built in blocks (checked by ``verify_safetensors``)."""
    output.flush()
    fd = output.fileno()
    preallocate(fd, layout.size)
    assert layout.header is not None, "written before it is checked and let go"
    write_all(fd, layout.header, 0)
    built = []
    with RangeCopier(fd, verify, meter.add) as copier:
        for index, entry in enumerate(layout.entries):
            meter.label(entry.name)
            if not write_tensor(entry, layout.place(index)[0], sources, byteorder, copier,
                                verify, meter):
                built.append(index)
        copier.finish()
    return built


def write_tensor(entry: Entry, begin: int, sources: SourceFiles, byteorder: str,
                 copier: RangeCopier, verify: bool, meter: Meter) -> bool:
    """Write one tensor at ``begin``; True when copied as byte ranges (and checked by the
    copier), False when built in blocks."""
    pieces = pieces_of(entry.tensor, sources.own_file)
    runs = byte_runs(entry, pieces, byteorder)
    if runs is not None:
        for run in runs:
            copier.copy(sources.get(run.file), run.offset, run.length, begin + run.at,
                        f"tensor {entry.name}", begin, run.crc)
        return True
    remote = verify and any(is_url(piece.file) for piece in pieces)
    for at, block in assembled_blocks(entry, pieces, sources, byteorder):
        copier.write(block, begin + at)
        if remote:  # compared now: a URL's bytes are not fetched twice
            check_written(copier.dest, begin + at, block, f"tensor {entry.name}", begin)
            meter.add(block.size)
    return False
