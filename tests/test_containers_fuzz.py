"""Damaged DCP metadata and .pt2 payload configs: any field replaced by a value of another type
ends in a result or a one-line error, never a traceback. The damage is structural (the pickle and
the JSON still parse), which byte-level mutation rarely reaches."""

from __future__ import annotations

import json
import pickle
import random
import shutil
import zipfile
from pathlib import Path
from typing import Any

import pytest
import torch

from ckpt_tool.inspect.report import inspect_file
from tests.conftest import FIXTURES

CONTAINERS = FIXTURES / "containers"
GARBAGE = [None, 0, -1, 10**12, "x", "../x", [], [1], (-1,), (0, 0, 0), {}, {"a": 1}, 1.5, b"zz",
           torch.Size([3, 99]), True]
EXAMPLES = 60


def _slots(value: Any, depth: int = 0) -> list[tuple[Any, Any]]:
    """Every (container, key) below ``value``: dict items, list items, object attributes."""
    if depth > 6:
        return []
    if isinstance(value, dict):
        pairs = [(value, key) for key in value]
    elif isinstance(value, list):
        pairs = [(value, index) for index in range(len(value))]
    elif hasattr(value, "__dict__") and not isinstance(value, torch.dtype | type):
        pairs = [(value, key) for key in vars(value)]
    else:
        return []
    children = [_get(container, key) for container, key in pairs]
    return pairs + [slot for child in children for slot in _slots(child, depth + 1)]


def _get(container: Any, key: Any) -> Any:
    return container[key] if isinstance(container, dict | list) else getattr(container, key)


def damage(value: Any, rng: random.Random) -> None:
    for _ in range(rng.randint(1, 3)):
        container, key = rng.choice(_slots(value))
        garbage = rng.choice(GARBAGE)
        if isinstance(container, dict | list):
            container[key] = garbage
        else:
            object.__setattr__(container, key, garbage)  # frozen dataclasses too


def assert_clean(path: Path) -> None:
    report = inspect_file(str(path))
    assert report.error is None or "\n" not in report.error


@pytest.mark.parametrize("seed", range(EXAMPLES))
def test_damaged_dcp_metadata_fails_cleanly(seed: int, tmp_path: Path) -> None:
    rng = random.Random(seed)
    folder = tmp_path / "dcp"
    shutil.copytree(CONTAINERS / rng.choice(["dcp_single", "dcp_2ranks"]), folder)
    original = (folder / ".metadata").read_bytes()
    while True:
        metadata = pickle.loads(original)  # torch's classes: trusted test input
        damage(metadata, rng)
        try:
            data = pickle.dumps(metadata)
        except RuntimeError:  # TensorProperties refuses to pickle a bad memory_format
            continue
        break
    (folder / ".metadata").write_bytes(data)
    assert_clean(folder)


@pytest.mark.parametrize("seed", range(EXAMPLES))
def test_damaged_payload_configs_fail_cleanly(seed: int, tmp_path: Path) -> None:
    rng = random.Random(seed)
    source = CONTAINERS / rng.choice(["export.pt2", "export_models.pt2", "export_subclass.pt2"])
    path = tmp_path / "damaged.pt2"
    with zipfile.ZipFile(source) as archive, zipfile.ZipFile(path, "w") as out:
        for info in archive.infolist():
            data = archive.read(info)
            if info.filename.endswith("_config.json"):
                config = json.loads(data)
                damage(config, rng)
                data = json.dumps(config, default=str).encode()
            out.writestr(info, data)
    assert_clean(path)
