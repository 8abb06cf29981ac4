"""``json.dumps`` of an inspect document, with its tensor rows written from a template.

A file of 50,000 tensors is 50,000 rows of the same 13 keys: ``json.dumps`` encodes every key
of every row again, and that was the largest step of ``ckpt inspect --json`` on such a file. The
text is the same, byte for byte (a test compares them on every fixture and on generated rows):
the same separators, ``ensure_ascii`` as asked, and any row that is not a plain one (details,
chunks, statistics, or a value of an unexpected type) goes through ``json.dumps`` itself.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from json.encoder import encode_basestring, encode_basestring_ascii  # type: ignore[attr-defined]
from typing import Any

PLAIN_ROW = ("name", "dtype", "shape", "numel", "nbytes", "device", "offset", "stride",
             "storage", "storage_offset", "requires_grad", "kind", "layout")
"""The keys of a plain tensor's row, in the order ``tensor_json`` writes them."""


def document_text(document: dict[str, Any], ensure_ascii: bool) -> str:
    """``json.dumps(document, ensure_ascii=ensure_ascii)``, the rows under each file's
    ``tensors`` written from the template."""
    dumps = _dumps(ensure_ascii)
    encode = encode_basestring_ascii if ensure_ascii else encode_basestring
    items = []
    for key, value in document.items():
        if key == "files" and type(value) is list:
            text = "[" + ", ".join(_file_text(entry, dumps, encode) for entry in value) + "]"
        else:
            text = dumps(value)
        items.append(f"{dumps(key)}: {text}")
    return "{" + ", ".join(items) + "}"


def _dumps(ensure_ascii: bool) -> Callable[[Any], str]:
    # No cycle check: an inspect document is built fresh, its values through to_json
    # (depth-capped), so it is a tree.
    encoder = json.JSONEncoder(ensure_ascii=ensure_ascii, check_circular=False)
    return encoder.encode


def _file_text(entry: Any, dumps: Callable[[Any], str], encode: Callable[[str], str]) -> str:
    if type(entry) is not dict:
        return dumps(entry)
    items = []
    for key, value in entry.items():
        if key == "tensors" and type(value) is list:
            text = "[" + ", ".join([_row_text(row, dumps, encode) for row in value]) + "]"
        else:
            text = dumps(value)
        items.append(f"{dumps(key)}: {text}")
    return "{" + ", ".join(items) + "}"


def _row_text(row: Any, dumps: Callable[[Any], str], encode: Callable[[str], str]) -> str:
    if type(row) is not dict or tuple(row) != PLAIN_ROW:
        return dumps(row)
    (name, dtype, shape, numel, nbytes, device, offset, stride, storage, storage_offset,
     requires_grad, kind, layout) = row.values()
    if not (type(name) is type(dtype) is type(device) is type(kind) is type(layout) is str
            and type(numel) is type(nbytes) is type(storage_offset) is int
            and (offset is None or type(offset) is int)
            and (storage is None or type(storage) is str)
            and type(requires_grad) is bool and _ints(shape) and _ints(stride)):
        return dumps(row)
    return (f'{{"name": {encode(name)}, "dtype": {encode(dtype)}, '
            f'"shape": [{", ".join(map(str, shape))}], "numel": {numel}, "nbytes": {nbytes}, '
            f'"device": {encode(device)}, "offset": {"null" if offset is None else offset}, '
            f'"stride": [{", ".join(map(str, stride))}], '
            f'"storage": {"null" if storage is None else encode(storage)}, '
            f'"storage_offset": {storage_offset}, '
            f'"requires_grad": {"true" if requires_grad else "false"}, "kind": {encode(kind)}, '
            f'"layout": {encode(layout)}}}')


def _ints(values: Any) -> bool:
    if type(values) is not list:
        return False
    for value in values:  # noqa: SIM110  # a loop, not all() of a generator: twice as fast
        if type(value) is not int:
            return False
    return True
