"""Where each output goes: beside its source with the new extension, or under ``-o``.

Under an ``-o`` folder, inputs found by walking a folder keep their place below it:
``ckpt convert runs/ -o out/`` writes ``runs/checkpoint-500/model.pt`` to
``out/checkpoint-500/model.safetensors``, so same-named files of different folders never
collide. Inputs named on the command line go straight into the folder.

A model in several files written as safetensors is named as transformers names it, so that
``from_pretrained`` loads the folder: ``model.safetensors`` (and, sharded,
``model-0000N-of-0000M.safetensors`` + ``model.safetensors.index.json``) in the ``-o`` folder, or
beside an HF index without ``-o``. A DCP, ZeRO or per-rank DTensor folder without ``-o`` becomes
``FOLDER.safetensors`` beside it.
"""

from __future__ import annotations

import os

from ckpt_tool.containers.locations import base_name
from ckpt_tool.containers.remote import is_url
from ckpt_tool.containers.suffixes import stem
from ckpt_tool.convert.options import Target
from ckpt_tool.convert.shards import DEFAULT_MODEL_NAME
from ckpt_tool.errors import ConversionError

INDEX_SUFFIX = ".index.json"


def destinations(sources: list[str], target: Target, output: str | None,
                 bases: list[str | None] | None = None,
                 models: list[bool] | None = None) -> list[str]:
    """One destination per source. ``output`` is a file for one source named on the command
    line, else a folder; ``bases[i]`` is the folder source ``i`` was found in by a walk (its
    place below that folder is kept under ``output``); ``models[i]`` says that source ``i`` is a
    model in several files (a folder or an index)."""
    bases = bases if bases is not None else [None] * len(sources)
    models = models if models is not None else [False] * len(sources)
    folder_output = is_folder_output(sources, output, bases)
    result = []
    for source, base, model in zip(sources, bases, models, strict=True):
        if output is not None and not folder_output:
            result.append(output)
            continue
        several = model or (is_url(source) and source.endswith("/"))
        if output is None:
            result.append(_beside(source, target, several))
            continue
        folder = output
        if base:
            below = os.path.relpath(os.path.dirname(os.path.normpath(source)), base)
            folder = os.path.normpath(os.path.join(output, below))
        if several and target is Target.SAFETENSORS:
            result.append(os.path.join(folder, DEFAULT_MODEL_NAME if len(sources) == 1
                                       else _model_name(source) + target.extension))
        else:
            result.append(os.path.join(folder, stem(base_name(source)) + target.extension))
    _refuse_collisions(sources, result)
    return result


def is_folder_output(sources: list[str], output: str | None,
                     bases: list[str | None]) -> bool:
    return output is not None and (len(sources) > 1 or os.path.isdir(output)
                                   or output.endswith(os.sep)
                                   or any(base is not None for base in bases))


def _beside(source: str, target: Target, model: bool) -> str:
    if is_url(source):
        raise ConversionError(f"{source}: a URL has no folder to write beside; give -o")
    if not model:
        return os.path.join(os.path.dirname(source), stem(source) + target.extension)
    if source.endswith(INDEX_SUFFIX) and target is Target.SAFETENSORS:
        return os.path.join(os.path.dirname(source), DEFAULT_MODEL_NAME)
    return os.path.normpath(source) + target.extension


def _model_name(source: str) -> str:
    """The name that tells several models apart in one ``-o`` folder: their folder's."""
    if source.endswith(INDEX_SUFFIX):
        source = os.path.dirname(source) if not is_url(source) else source.rsplit("/", 1)[0]
    return base_name(source) or "model"


def _refuse_collisions(sources: list[str], dests: list[str]) -> None:
    seen: dict[str, str] = {}
    for source, dest in zip(sources, dests, strict=True):
        key = os.path.realpath(dest)
        if key in seen:
            raise ConversionError(f"{seen[key]} and {source} would both be written to {dest}; "
                                  "convert them separately with -o")
        seen[key] = source
