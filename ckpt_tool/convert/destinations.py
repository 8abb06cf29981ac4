"""Where each output goes: beside its source with the new extension, or under ``-o``.

Under an ``-o`` folder, files found by walking a folder (or through an index) keep their place
below it: ``ckpt convert runs/ -o out/`` writes ``runs/checkpoint-500/model.pt`` to
``out/checkpoint-500/model.safetensors``, so same-named files of different folders never
collide. Files named on the command line go straight into the folder.
"""

from __future__ import annotations

import os

from ckpt_tool.containers.suffixes import stem
from ckpt_tool.convert.options import Target
from ckpt_tool.errors import ConversionError


def destinations(sources: list[str], target: Target, output: str | None,
                 bases: list[str | None] | None = None) -> list[str]:
    """One destination per source. ``output`` is a file for one source named on the command
    line, else a folder; ``bases[i]`` is the folder source ``i`` was found in by a walk (its
    place below that folder is kept under ``output``)."""
    bases = bases if bases is not None else [None] * len(sources)
    folder_output = is_folder_output(sources, output, bases)
    result = []
    for source, base in zip(sources, bases, strict=True):
        name = stem(source) + target.extension
        if output is None:
            result.append(os.path.join(os.path.dirname(source), name))
        elif folder_output:
            below = os.path.relpath(os.path.dirname(source), base) if base else "."
            result.append(os.path.normpath(os.path.join(output, below, name)))
        else:
            result.append(output)
    _refuse_collisions(sources, result)
    return result


def is_folder_output(sources: list[str], output: str | None,
                     bases: list[str | None]) -> bool:
    return output is not None and (len(sources) > 1 or os.path.isdir(output)
                                   or output.endswith(os.sep)
                                   or any(base is not None for base in bases))


def _refuse_collisions(sources: list[str], dests: list[str]) -> None:
    seen: dict[str, str] = {}
    for source, dest in zip(sources, dests, strict=True):
        key = os.path.realpath(dest)
        if key in seen:
            raise ConversionError(f"{seen[key]} and {source} would both be written to {dest}; "
                                  "convert them separately with -o")
        seen[key] = source
