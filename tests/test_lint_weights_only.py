"""CKPT004 agrees with the real ``torch.load(weights_only=True)`` on every fixture, and on
archives built here (accepted <-> no CKPT004)."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from ckpt_tool.lint import lint_file
from tests.conftest import FIXTURES, TORCH_FIXTURES
from tests.lint_corpus import legacy_stream, torch_zip
from tests.torch_reference import torch_accepts


def refused_by_lint(path: str) -> bool:
    return any(finding.code == "CKPT004" for finding in lint_file(path))


@pytest.mark.parametrize("name", TORCH_FIXTURES)
def test_fixture(name: str, canary_dir: Path) -> None:
    path = str(FIXTURES / name)
    assert refused_by_lint(path) == (not torch_accepts(path))
    assert not (canary_dir / "ckpt_canary.txt").exists()


BUILT = {
    "ordered-dict-protocol-2": lambda: torch_zip({"data.pkl": pickle.dumps(
        {"epoch": 1, "names": ["a", "b"], "lr": 0.1}, protocol=2)}),
    "set-and-complex": lambda: torch_zip({"data.pkl": pickle.dumps(
        {"s": {1, 2}, "c": 1 + 2j}, protocol=2)}),
    "frozenset": lambda: torch_zip({"data.pkl": pickle.dumps({"s": frozenset({1})}, protocol=2)}),
    "protocol-3-bytes": lambda: torch_zip({"data.pkl": pickle.dumps({"b": b"xy"}, protocol=3)}),
    "legacy-plain": lambda: legacy_stream(pickle.dumps({"epoch": 1}, protocol=2)),
    "legacy-protocol-4": lambda: legacy_stream(pickle.dumps({"epoch": 1}, protocol=4)),
}


@pytest.mark.parametrize("name", sorted(BUILT))
def test_built(name: str, tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    path.write_bytes(BUILT[name]())
    assert refused_by_lint(str(path)) == (not torch_accepts(str(path)))
