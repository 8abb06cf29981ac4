"""Open any supported checkpoint; one reader per container format, all producing a Checkpoint."""

from __future__ import annotations

import os

from ckpt_tool.containers.detect import Kind, sniff
from ckpt_tool.containers.locations import is_folder
from ckpt_tool.containers.remote import NO_OPTIONS, RemoteOptions, is_url, open_url
from ckpt_tool.containers.source import FileSource, Source
from ckpt_tool.errors import FormatError, NotACheckpoint, UnsupportedFormat
from ckpt_tool.limits import DEFAULT_LIMITS, Limits
from ckpt_tool.model.checkpoint import Checkpoint, Format
from ckpt_tool.pickles.weights_only import judge_weights_only
from ckpt_tool.readers.torch_zip import TorchArchive, read_torch_zip

# The other readers are imported by the branch that needs them: a run reads one or two formats,
# and every module imported is start-up that each pre-commit run pays.

PT2_FORMAT_RECORD, PT2_FORMAT_VALUE = "archive_format", "pt2"
PACKAGE_RECORD = ".data/extern_modules"


def archive_format(archive: TorchArchive) -> Format | None:
    """What a torch-written zip is, from its records: a ``.pt2`` says so in ``archive_format``
    (torch.export's ``is_pt2_package``); a torch.package has the extern-module list that
    ``PackageImporter`` reads first; TorchScript has ``constants.pkl``; torch.save ``data.pkl``."""
    if archive.read_text(PT2_FORMAT_RECORD) == PT2_FORMAT_VALUE:
        return Format.TORCH_EXPORT
    if archive.has(PACKAGE_RECORD):
        return Format.TORCH_PACKAGE
    if archive.has("constants.pkl"):
        return Format.TORCHSCRIPT
    if archive.has("data.pkl"):
        return Format.TORCH_ZIP
    return None


def read_zip(source: Source, limits: Limits, archive: TorchArchive | None = None) -> Checkpoint:
    if archive is None:
        archive = TorchArchive(source, limits)
    kind = archive_format(archive)
    if kind is Format.TORCH_EXPORT:
        from ckpt_tool.readers.torch_export import read_torch_export

        return read_torch_export(archive, limits)
    if kind is Format.TORCH_PACKAGE:
        from ckpt_tool.readers.torch_package import read_torch_package

        return read_torch_package(archive, limits)
    return read_torch_zip(source, limits, archive)


def read_checkpoint(source: Source, limits: Limits = DEFAULT_LIMITS,
                    archive: TorchArchive | None = None) -> Checkpoint:
    """``archive``: the zip's directory when the caller has read it already (lint)."""
    kind, description = sniff(source)
    if kind is Kind.ZIP:
        try:
            checkpoint = read_zip(source, limits, archive)
        except FormatError as exc:
            from ckpt_tool.readers.dcp_listing import dcp_folder_owning

            owner = dcp_folder_owning(source.name)
            if owner is None:
                raise
            raise FormatError(f"a data file of the DCP checkpoint {owner} (torch.distributed."
                              "checkpoint), not a checkpoint of its own: inspect the folder "
                              f"({exc})") from None
    elif kind is Kind.LEGACY:
        from ckpt_tool.readers.legacy import read_legacy

        checkpoint = read_legacy(source, limits)
    elif kind is Kind.SAFETENSORS:
        from ckpt_tool.readers.safetensors import read_safetensors

        checkpoint = read_safetensors(source, limits)
    elif kind is Kind.PICKLE and _dcp_metadata(source):
        from ckpt_tool.readers.dcp import read_dcp

        checkpoint = read_dcp(source, limits)
    elif kind is Kind.OTHER and _index(source):
        from ckpt_tool.readers.hf_index import read_hf_index

        checkpoint = read_hf_index(source.name, limits)
    elif kind is Kind.TAR:
        raise UnsupportedFormat(
            "a tar archive (torch's pre-0.4 tar format?): not supported; load it with an old "
            "torch and save it again"
        )
    else:
        raise NotACheckpoint(f"not a checkpoint: {description}")
    checkpoint.weights_only = judge_weights_only(checkpoint)
    checkpoint.bytes_read += source.bytes_read
    checkpoint.requests += getattr(source, "requests", 0)
    return checkpoint


def _dcp_metadata(source: Source) -> bool:
    from ckpt_tool.readers.dcp import is_dcp_metadata

    return is_dcp_metadata(source)


def _index(source: Source) -> bool:
    from ckpt_tool.readers.hf_index import looks_like_index

    return looks_like_index(source.read_at(0, min(source.size, 4096)))


def open_source(path: str | os.PathLike[str], remote: RemoteOptions = NO_OPTIONS) -> Source:
    """A local file, or a URL read with range requests (``remote``: how to reach it)."""
    if isinstance(path, str) and is_url(path):
        return open_url(path, remote)
    if os.path.isdir(path):
        raise FormatError("is a directory")
    try:
        return FileSource(path)
    except IsADirectoryError:
        raise FormatError("is a directory") from None
    except OSError as exc:
        raise FormatError(exc.strerror or str(exc)) from None


def open_checkpoint(path: str | os.PathLike[str], limits: Limits = DEFAULT_LIMITS,
                    remote: RemoteOptions = NO_OPTIONS) -> Checkpoint:
    """Read a checkpoint's structure (never its tensor bytes): a file, a URL, an HF index, or a
    folder (local, or a URL ending in ``/``) that is one model (DCP, DeepSpeed ZeRO, an HF index
    and its shards, per-rank DTensor files). ``remote``: how to reach a URL (a folder's files are
    read with fsspec's defaults)."""
    if is_folder(os.fspath(path)):
        from ckpt_tool.readers.folders import open_folder

        checkpoint = open_folder(os.fspath(path), limits)
        checkpoint.weights_only = judge_weights_only(checkpoint)
        return checkpoint
    source = open_source(path, remote)
    try:
        return read_checkpoint(source, limits)
    finally:
        source.close()
