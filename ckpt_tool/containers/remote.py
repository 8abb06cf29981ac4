"""Checkpoints that are not on this disk: read through HTTP range requests (built in) or any
fsspec URL (``s3://``, ``hf://``... with the ``remote`` extra), fetching only what is needed."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ckpt_tool.errors import CkptError, FormatError, MissingExtra
from ckpt_tool.extras import require_fsspec
from ckpt_tool.model.record import Record

_MIN_FETCH = 16 << 10
"""Read ahead at least this much: zip headers and pickles are read in small adjacent pieces."""
_HEAD = 64 << 10
"""The first request asks for this much of the file's start: the format's magic, a safetensors
header, or a torch.save archive's first member (``data.pkl``) and the small records after it;
its answer also gives the file's size."""
_TAIL = 64 << 10
"""A read in this much of the end fetches all of it: a zip's end record, its central directory
and torch's last records (``version``, ``serialization_id``) come in one request."""
_GAP = 4 << 10
"""read_many merges ranges closer than this into one request."""
_PARALLEL = 8
_TIMEOUT = 30
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


def is_url(path: str) -> bool:
    return re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", path) is not None


def is_http(url: str) -> bool:
    return url.lower().startswith(("http://", "https://"))


class RemoteOptions(Record):
    """How to reach a URL: fsspec's ``storage_options`` (credentials, ``anon``, endpoints...),
    and the file's size when a listing already gave it (an fsspec source then skips the
    metadata request it would otherwise make to learn the size)."""

    __slots__ = ("storage_options", "size")
    storage_options: Mapping[str, Any]
    size: int | None

    def __init__(self, storage_options: Mapping[str, Any] | None = None,
                 size: int | None = None) -> None:
        self.storage_options = {} if storage_options is None else storage_options
        self.size = size


NO_OPTIONS = RemoteOptions()


class _CachedSource:
    """Keeps fetched segments so overlapping small reads cost one request."""

    remote = True
    """Each read is a request: readers compute what they can instead of reading it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.size = 0
        self.bytes_read = 0
        self.requests = 0
        self._segments: list[tuple[int, bytes]] = []

    def _fetch(self, start: int, end: int) -> bytes:
        raise NotImplementedError

    def _cached(self, offset: int, length: int) -> bytes | None:
        for start, data in self._segments:
            if start <= offset and offset + length <= start + len(data):
                return data[offset - start : offset - start + length]
        return None

    def _check(self, offset: int, length: int) -> None:
        if offset < 0 or length < 0 or offset + length > self.size:
            raise FormatError(f"needs bytes {offset}..{offset + length} but the file holds "
                              f"{self.size} (truncated?)")

    def _remember(self, start: int, data: bytes) -> None:
        self._segments.append((start, data))
        self.bytes_read += len(data)
        self.requests += 1

    def read_at(self, offset: int, length: int) -> bytes:
        self._check(offset, length)
        cached = self._cached(offset, length)
        if cached is not None:
            return cached
        start, end = offset, min(self.size, offset + max(length, _MIN_FETCH))
        if offset >= self.size - _TAIL:
            start, end = max(0, self.size - _TAIL), max(end, self.size)
        data = self._fetch(start, end)
        self._remember(start, data)
        return data[offset - start : offset - start + length]

    def read_bulk(self, offset: int, length: int) -> bytes:
        """Tensor bytes: fetched as asked and not kept, so that streaming a model through this
        source costs no memory beyond the block being copied."""
        self._check(offset, length)
        if length == 0:
            return b""
        data = self._fetch(offset, offset + length)
        self.bytes_read += len(data)
        self.requests += 1
        return data

    def read_many(self, ranges: list[tuple[int, int]]) -> list[bytes]:
        for offset, length in ranges:
            self._check(offset, length)
        wanted = sorted({(o, o + n) for o, n in ranges if self._cached(o, n) is None})
        groups: list[list[int]] = []
        for start, end in wanted:
            if groups and start - groups[-1][1] <= _GAP:
                groups[-1][1] = max(groups[-1][1], end)
            else:
                groups.append([start, end])
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(_PARALLEL) as pool:
            fetched = list(pool.map(lambda g: self._fetch(g[0], g[1]), groups))
        for (start, _), data in zip(groups, fetched, strict=True):
            self._remember(start, data)
        return [self.read_at(offset, length) for offset, length in ranges]

    def close(self) -> None:
        self._segments.clear()


class HttpSource(_CachedSource):
    """A URL served with HTTP range requests; a server that ignores Range is refused.
    ``storage_options["headers"]`` are sent with every request (an ``Authorization`` header
    for a private repository)."""

    def __init__(self, url: str, options: RemoteOptions = NO_OPTIONS) -> None:
        super().__init__(url)
        self._headers = {str(k): str(v)
                         for k, v in dict(options.storage_options.get("headers") or {}).items()}
        data, total = self._request(0, _HEAD)
        self.size = total
        self._remember(0, data)

    def _request(self, start: int, end: int) -> tuple[bytes, int]:
        import urllib.error
        import urllib.request

        headers = {**self._headers, "Range": f"bytes={start}-{end - 1}"}
        request = urllib.request.Request(self.name, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=_TIMEOUT) as response:
                if response.status != 206:
                    raise FormatError(
                        "the server ignores HTTP Range requests, so reading only the headers "
                        "is impossible: download the file and inspect the copy")
                match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
                if not match or match.group(3) == "*":
                    raise FormatError("the server's answer has no usable Content-Range header")
                data = response.read(end - start + 1)
                total = int(match.group(3))
        except urllib.error.HTTPError as exc:
            raise FormatError(f"HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise FormatError(f"cannot fetch: {reason}") from None
        if len(data) != min(end, total) - start:
            raise FormatError(f"the server sent {len(data)} bytes for a {end - start}-byte range")
        return data, total

    def _fetch(self, start: int, end: int) -> bytes:
        return self._request(start, end)[0]


class FsspecSource(_CachedSource):
    """Any URL fsspec has a backend for (s3://, gs://, hf://, memory://...): the same reads as
    over HTTP (64 KiB from the start, the last 64 KiB when needed), plus one metadata request
    for the size unless ``options.size`` gives it (counted in ``requests``; sent at the same
    time as the first read, so it costs no extra round trip)."""

    def __init__(self, url: str, options: RemoteOptions = NO_OPTIONS) -> None:
        super().__init__(url)
        self._fs, self._path = filesystem(url, options)
        if options.size is not None:
            self.size = options.size
            self._remember(0, self._fetch(0, min(self.size, _HEAD)))
            return
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(2) as pool:
            size = pool.submit(self._fs.size, self._path)
            head = pool.submit(self._fetch, 0, _HEAD)
            try:
                self.size = int(size.result())
            except FileNotFoundError:
                raise FormatError("no such file") from None
            except Exception as exc:  # any backend's error: see backend_error
                raise backend_error("cannot open", exc) from None
            data = head.result()[: self.size]
        self.requests += 1
        self._remember(0, data)

    def _fetch(self, start: int, end: int) -> bytes:
        try:
            return bytes(self._fs.cat_file(self._path, start=start, end=end))
        except Exception as exc:  # any backend's error: see backend_error
            raise backend_error(f"cannot read bytes {start}..{end}", exc) from None


def backend_error(what: str, exc: Exception) -> CkptError:
    """An fsspec backend's failure as a one-line error. Backends raise their own types
    (botocore's, httpx's and huggingface_hub's errors are not OSErrors), so every exception from
    a backend call lands here; ckpt's own errors pass through as they are."""
    if isinstance(exc, CkptError):
        return exc
    lines = str(exc).strip().splitlines()
    return FormatError(f"{what}: {type(exc).__name__}{': ' + lines[0] if lines else ''}")


def filesystem(url: str, options: RemoteOptions = NO_OPTIONS) -> tuple[Any, str]:
    """fsspec's file system for ``url`` and the path inside it, or a one-line error."""
    scheme = url.split("://", 1)[0]
    fsspec = require_fsspec(scheme)
    try:
        return fsspec.core.url_to_fs(url, **dict(options.storage_options))
    except ImportError as exc:
        hint = " (hf:// needs huggingface_hub: pip install huggingface_hub)" if scheme == "hf" \
            else ""
        raise MissingExtra(f"fsspec has no backend installed for {scheme}:// URLs: "
                           f"{exc}{hint}") from None
    except Exception as exc:  # any backend's error: see backend_error
        raise backend_error("cannot open", exc) from None


def open_url(url: str, options: RemoteOptions = NO_OPTIONS) -> _CachedSource:
    if is_http(url):
        return HttpSource(url, options)
    return FsspecSource(url, options)
