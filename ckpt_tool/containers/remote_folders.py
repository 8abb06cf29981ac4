"""A URL that names a folder (``s3://bucket/run/``, ``memory://models``) or a repository
(``hf://org/repo@rev``, with huggingface_hub's fsspec file system) expanded into the checkpoint
files below it, with the sizes the listing gives (so reading each costs no metadata request).

Remote files are chosen by name (a checkpoint extension): sniffing each would cost a request per
file before any is read. A URL with a checkpoint extension is taken as a file without asking.
"""

from __future__ import annotations

from ckpt_tool.containers.remote import (
    NO_OPTIONS,
    RemoteOptions,
    backend_error,
    filesystem,
    is_http,
)
from ckpt_tool.containers.suffixes import CHECKPOINT_SUFFIXES
from ckpt_tool.errors import CkptError, FormatError
from ckpt_tool.model.record import Record


class RemoteFile(Record):
    __slots__ = ("url", "size", "error", "folder")
    url: str
    size: int | None
    error: str | None
    folder: str | None
    """The folder or repository URL it was listed from."""

    def __init__(self, url: str, size: int | None = None, error: str | None = None,
                 folder: str | None = None) -> None:
        self.url = url
        self.size = size
        self.error = error
        self.folder = folder


class RemoteListing(Record):
    __slots__ = ("files", "skipped")
    files: list[RemoteFile]
    skipped: list[str]
    """Files of a listed folder passed over: not named as checkpoints."""

    def __init__(self, files: list[RemoteFile], skipped: list[str]) -> None:
        self.files = files
        self.skipped = skipped


def named_as_checkpoint(url: str) -> bool:
    name = url.rstrip("/").rsplit("/", 1)[-1].lower()
    return not url.endswith("/") and name.endswith(CHECKPOINT_SUFFIXES)


def expand_url(url: str, options: RemoteOptions = NO_OPTIONS) -> RemoteListing:
    """The checkpoint files ``url`` stands for: itself (an HTTP URL, a name with a checkpoint
    extension, or a file), or those below it (a folder or repository). Errors come back as a
    ``RemoteFile`` with ``error`` set."""
    if is_http(url) or named_as_checkpoint(url):
        return RemoteListing([RemoteFile(url, options.size)], [])
    try:
        return _list(url, options)
    except CkptError as exc:
        return RemoteListing([RemoteFile(url, error=str(exc))], [])


def _list(url: str, options: RemoteOptions) -> RemoteListing:
    fs, path = filesystem(url, options)
    try:
        info = fs.info(path)
        if info.get("type") != "directory":
            return RemoteListing([RemoteFile(url, _size(info))], [])
        found = fs.find(path, detail=True)
    except FileNotFoundError:
        raise FormatError("no such file or folder") from None
    except Exception as exc:  # any backend's error: see backend_error
        raise backend_error("cannot list", exc) from None
    files, skipped = [], []
    for name in sorted(found):
        entry = found[name]
        if entry.get("type") == "directory":
            continue
        child = fs.unstrip_protocol(name)
        if named_as_checkpoint(child):
            files.append(RemoteFile(child, _size(entry), folder=url))
        else:
            skipped.append(child)
    if not files:
        files = [RemoteFile(url, error="no checkpoint files below this URL (files are chosen by "
                                       "their extension: .pt, .pth, .bin, .safetensors...)")]
    return RemoteListing(files, skipped)


def _size(info: dict) -> int | None:
    size = info.get("size")
    return int(size) if isinstance(size, int) and size >= 0 else None
