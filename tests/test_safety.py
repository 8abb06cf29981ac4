"""The allow-lists ckpt ships agree with the installed torch, and the weights-only verdict agrees
with ``torch.load(weights_only=True)`` on every fixture."""

from __future__ import annotations

import inspect
import re

import pytest
from torch import _weights_only_unpickler

from ckpt_tool.pickles.safety import TORCH_WEIGHTS_ONLY_OPCODES, torch_weights_only_globals
from ckpt_tool.readers import open_checkpoint
from tests.conftest import FIXTURES, TORCH_FIXTURES
from tests.torch_reference import torch_accepts


def test_globals_file_matches_installed_torch() -> None:
    assert torch_weights_only_globals() == frozenset(_weights_only_unpickler._get_allowed_globals())


def test_opcodes_match_torch_unpickler_source() -> None:
    source = inspect.getsource(_weights_only_unpickler.Unpickler.load)
    implemented = set(re.findall(r"\b([A-Z][A-Z0-9_]+)\[0\]", source))
    assert implemented == TORCH_WEIGHTS_ONLY_OPCODES


@pytest.mark.parametrize("name", TORCH_FIXTURES)
def test_weights_only_verdict_matches_torch(name: str, canary_dir) -> None:
    path = str(FIXTURES / name)
    assert open_checkpoint(path).weights_only.accepted == torch_accepts(path)
    assert not (canary_dir / "ckpt_canary.txt").exists()
