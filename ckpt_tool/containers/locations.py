"""Folders and the files in them, on this disk or behind a URL.

A model in several files (a DCP folder, a DeepSpeed ZeRO folder, an HF index and its shards,
per-rank DTensor files) is read from a folder: a local path, or a URL ending in ``/``. fsspec URLs
(``s3://``, ``hf://``...) can be listed; a plain HTTP folder cannot, so readers of HTTP folders
open the names their producer writes.
"""

from __future__ import annotations

import os
import urllib.parse

from ckpt_tool.containers.remote import backend_error, filesystem, is_url, open_url
from ckpt_tool.errors import FormatError

SMALL_FILE_LIMIT = 64 << 20
"""Largest JSON index or ``latest`` file read whole."""


def join(folder: str, name: str) -> str:
    """``name`` (a relative path, ``/``-separated) inside ``folder``."""
    if not is_url(folder):
        return os.path.join(folder, *name.split("/"))
    base = folder if folder.endswith("/") else folder + "/"
    return urllib.parse.urljoin(base, urllib.parse.quote(name))


def parent(path: str) -> str:
    if is_url(path):
        return path.rsplit("/", 1)[0] + "/"
    return os.path.dirname(path) or "."


def base_name(path: str) -> str:
    if is_url(path):
        return urllib.parse.unquote(path.rstrip("/").rsplit("/", 1)[-1])
    return os.path.basename(os.path.normpath(path))


def is_folder(path: str) -> bool:
    """A local folder, or a URL written as one (ending in ``/``)."""
    return path.endswith("/") if is_url(path) else os.path.isdir(path)


def list_folder(folder: str) -> list[str] | None:
    """The names of the files and folders in ``folder``, sorted; None for an HTTP folder."""
    if not is_url(folder):
        try:
            return sorted(os.listdir(folder))
        except OSError as exc:
            raise FormatError(exc.strerror or str(exc)) from None
    if folder.lower().startswith(("http://", "https://")):
        return None
    fs, path = filesystem(folder)
    try:
        entries = fs.ls(path, detail=False)
    except Exception as exc:  # any backend's error: see backend_error
        raise backend_error(f"cannot list {folder}", exc) from None
    return sorted(str(entry).rstrip("/").rsplit("/", 1)[-1] for entry in entries)


def exists(path: str) -> bool:
    if not is_url(path):
        return os.path.exists(path)
    try:
        open_url(path).close()
    except FormatError:
        return False
    return True


def read_small(path: str) -> bytes:
    """A whole small file (an index, ``latest``)."""
    if not is_url(path):
        try:
            with open(path, "rb") as file:
                data = file.read(SMALL_FILE_LIMIT + 1)
        except OSError as exc:
            raise FormatError(f"{path}: {exc.strerror or exc}") from None
    else:
        source = open_url(path)
        try:
            if source.size > SMALL_FILE_LIMIT:
                raise FormatError(f"{path}: {source.size} bytes, more than an index holds")
            data = source.read_at(0, source.size)
        finally:
            source.close()
    if len(data) > SMALL_FILE_LIMIT:
        raise FormatError(f"{path}: more than {SMALL_FILE_LIMIT} bytes, more than an index holds")
    return data
