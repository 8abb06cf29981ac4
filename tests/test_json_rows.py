"""The inspect document's text with rows from a template is ``json.dumps``'s, byte for byte."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ckpt_tool.api import inspect_one
from ckpt_tool.render.inspect_json import render_document
from ckpt_tool.render.json_rows import PLAIN_ROW, document_text
from ckpt_tool.render.safe import json_text
from tests.conftest import FIXTURES

text = st.text(st.characters(codec="utf-8") | st.sampled_from(['"', "\\", "\n", "\x00",
                                                                "\u2028", "\udcff", "é"]))
ints = st.integers(0, 2**70)
plain_rows = st.fixed_dictionaries({
    "name": text, "dtype": text, "shape": st.lists(ints, max_size=4), "numel": ints,
    "nbytes": ints, "device": text, "offset": st.none() | ints,
    "stride": st.lists(ints, max_size=4), "storage": st.none() | text, "storage_offset": ints,
    "requires_grad": st.booleans(), "kind": text, "layout": text,
})
odd_values = st.none() | st.booleans() | st.floats(allow_nan=False) | text | st.lists(ints)


@st.composite
def rows(draw: st.DrawFn) -> dict[str, Any]:
    row = draw(plain_rows)
    if draw(st.booleans()):  # a value of another type, a key more or a key less
        how = draw(st.sampled_from(["retype", "extra", "drop"]))
        key = draw(st.sampled_from(PLAIN_ROW))
        if how == "retype":
            row[key] = draw(odd_values)
        elif how == "extra":
            row["details"] = {"quantizer": draw(odd_values)}
        else:
            del row[key]
    return row


documents = st.fixed_dictionaries({
    "schema": st.just(2), "files": st.lists(st.fixed_dictionaries({
        "path": text, "tensors": st.lists(rows(), max_size=5), "metadata": st.dictionaries(
            text, odd_values, max_size=3)}), max_size=3),
    "total": st.fixed_dictionaries({"tensors": ints})})


@settings(max_examples=300, deadline=None)
@given(document=documents, ensure_ascii=st.booleans())
def test_generated_documents(document: dict[str, Any], ensure_ascii: bool) -> None:
    assert document_text(document, ensure_ascii) == json.dumps(document,
                                                                ensure_ascii=ensure_ascii)


@pytest.mark.parametrize("path", sorted([*FIXTURES.glob("*.pt*"), *FIXTURES.glob("formats/*")]),
                         ids=lambda p: p.name)
def test_fixture_documents(path: Path) -> None:
    document = inspect_one(str(path))
    assert render_document(document) == json_text(document)


def test_a_lone_surrogate_escapes_everything_as_json_text_does() -> None:
    row = dict.fromkeys(PLAIN_ROW, 0) | {"name": "bad\udcffé", "dtype": "float32", "shape": [],
                                         "stride": [], "device": "cpu", "storage": None,
                                         "offset": None, "requires_grad": False,
                                         "kind": "tensor", "layout": "strided"}
    document = {"schema": 2, "files": [{"path": "p", "tensors": [row]}]}
    assert render_document(document) == json_text(document)
    assert "\\udcff" in render_document(document) and "\\u00e9" in render_document(document)
