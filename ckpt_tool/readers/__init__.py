"""Open any supported checkpoint; one reader per container format, all producing a Checkpoint."""

from __future__ import annotations

import os

from ckpt_tool.containers.detect import Kind, sniff
from ckpt_tool.containers.remote import is_url, open_url
from ckpt_tool.containers.source import FileSource, Source
from ckpt_tool.errors import FormatError, NotACheckpoint, UnsupportedFormat
from ckpt_tool.limits import DEFAULT_LIMITS, Limits
from ckpt_tool.model.checkpoint import Checkpoint
from ckpt_tool.pickles.weights_only import judge_weights_only
from ckpt_tool.readers.legacy import read_legacy
from ckpt_tool.readers.safetensors import read_safetensors
from ckpt_tool.readers.torch_zip import read_torch_zip


def read_checkpoint(source: Source, limits: Limits = DEFAULT_LIMITS) -> Checkpoint:
    kind, description = sniff(source)
    if kind is Kind.ZIP:
        checkpoint = read_torch_zip(source, limits)
    elif kind is Kind.LEGACY:
        checkpoint = read_legacy(source, limits)
    elif kind is Kind.SAFETENSORS:
        checkpoint = read_safetensors(source, limits)
    elif kind is Kind.TAR:
        raise UnsupportedFormat(
            "a tar archive (torch's pre-0.4 tar format?): not supported; load it with an old "
            "torch and save it again"
        )
    else:
        raise NotACheckpoint(f"not a checkpoint: {description}")
    checkpoint.weights_only = judge_weights_only(checkpoint)
    checkpoint.bytes_read = source.bytes_read
    return checkpoint


def open_source(path: str | os.PathLike[str]) -> Source:
    """A local file, or a URL read with range requests."""
    if isinstance(path, str) and is_url(path):
        return open_url(path)
    if os.path.isdir(path):
        raise FormatError("is a directory")
    try:
        return FileSource(path)
    except IsADirectoryError:
        raise FormatError("is a directory") from None
    except OSError as exc:
        raise FormatError(exc.strerror or str(exc)) from None


def open_checkpoint(path: str | os.PathLike[str], limits: Limits = DEFAULT_LIMITS) -> Checkpoint:
    """Read a checkpoint's structure (never its tensor bytes)."""
    source = open_source(path)
    try:
        return read_checkpoint(source, limits)
    finally:
        source.close()
