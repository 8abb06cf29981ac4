"""Where each output goes: beside its source with the new extension, or under ``-o``."""

from __future__ import annotations

import os

from ckpt_tool.containers.suffixes import stem
from ckpt_tool.convert.options import Target
from ckpt_tool.errors import ConversionError


def destinations(sources: list[str], target: Target, output: str | None) -> list[str]:
    """One destination per source; ``output`` is a file for one source, else a folder."""
    folder_output = output is not None and (
        len(sources) > 1 or os.path.isdir(output) or output.endswith(os.sep))
    result = []
    for source in sources:
        name = stem(source) + target.extension
        if output is None:
            result.append(os.path.join(os.path.dirname(source), name))
        elif folder_output:
            result.append(os.path.join(output, name))
        else:
            result.append(output)
    _refuse_collisions(sources, result)
    return result


def _refuse_collisions(sources: list[str], dests: list[str]) -> None:
    seen: dict[str, str] = {}
    for source, dest in zip(sources, dests, strict=True):
        key = os.path.realpath(dest)
        if key in seen:
            raise ConversionError(f"{seen[key]} and {source} would both be written to {dest}; "
                                  "convert them separately with -o")
        seen[key] = source
