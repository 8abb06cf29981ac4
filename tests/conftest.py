from __future__ import annotations

from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"

TORCH_FIXTURES = sorted(
    p.name for p in FIXTURES.iterdir()
    if p.suffix in (".pt", ".pth", ".pwf", ".tar") and p.name not in
    {"lfs_pointer.pt", "not_a_checkpoint.pt", "pathconfig.pth"}
)
MALICIOUS = {"malicious.pt", "malicious_legacy.pt"}


@pytest.fixture
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture
def canary_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in an empty directory: the malicious fixtures' payload writes ckpt_canary.txt here."""
    monkeypatch.chdir(tmp_path)
    return tmp_path
