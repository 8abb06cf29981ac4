"""Mutated fixtures: ``lint_file`` never raises on bad input (a broken file is a finding) and
never runs anything (the malicious fixtures' canary stays absent)."""

from __future__ import annotations

import os
import random
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ckpt_tool.lint import lint_file
from ckpt_tool.lint.config import LintConfig
from ckpt_tool.lint.findings import RULES
from tests.conftest import FIXTURES
from tests.lint_corpus import CANARY
from tests.mutations import MUTATIONS

SEEDS = sorted(p for p in FIXTURES.iterdir() if p.is_file() and p.suffix not in (".py", ".md"))
ALL_RULES = LintConfig(selected=frozenset(RULES))


@settings(max_examples=int(os.environ.get("CKPT_FUZZ_EXAMPLES", 150)), deadline=None,
          derandomize=os.environ.get("CKPT_FUZZ_RANDOM") is None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.sampled_from(SEEDS), mutation=st.sampled_from(MUTATIONS),
       salt=st.integers(0, 2**32 - 1))
def test_mutated_fixtures_are_findings_not_crashes(seed: Path, mutation, salt: int,
                                                   canary_dir: Path) -> None:
    data = mutation(seed.read_bytes(), random.Random(salt))
    path = canary_dir / seed.name
    path.write_bytes(data)
    findings = lint_file(str(path), ALL_RULES)
    assert all(finding.code in RULES for finding in findings)
    if seed.name.startswith("malicious") and b"exec" in data:
        assert findings  # whatever the damage, a file that still names exec is never clean
    assert not (canary_dir / CANARY).exists()
