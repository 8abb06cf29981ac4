"""Mutated fixtures and random bytes: every run ends in a result or a one-line error, within
bounded time, and nothing in any pickle runs (the malicious fixtures' canary stays absent).

The seed corpus is ``fixtures/``; any input that once broke ckpt lives in ``tests/fuzz_corpus/``
and is replayed here.
"""

from __future__ import annotations

import os
import random
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ckpt_tool.inspect.report import inspect_file
from tests.conftest import FIXTURES
from tests.mutations import MUTATIONS

SEEDS = sorted(p for p in FIXTURES.iterdir() if p.is_file() and p.suffix != ".py"
               and p.suffix != ".md")
CORPUS = Path(__file__).parent / "fuzz_corpus"
TIME_LIMIT = 10


@contextmanager
def time_limit(seconds: int) -> Iterator[None]:
    def expire(*_: object) -> None:
        raise TimeoutError(f"took longer than {seconds} s")
    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def check_inspect(path: Path) -> None:
    with time_limit(TIME_LIMIT):
        report = inspect_file(str(path))
    if report.error is not None:
        assert report.error and "\n" not in report.error
    else:
        assert report.checkpoint is not None


@settings(max_examples=int(os.environ.get("CKPT_FUZZ_EXAMPLES", 300)), deadline=None,
          derandomize=not os.environ.get("CKPT_FUZZ_EXAMPLES"),
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(seed=st.sampled_from(SEEDS), mutation=st.sampled_from(MUTATIONS),
       salt=st.integers(0, 2**32 - 1))
def test_mutated_fixtures_fail_cleanly(seed: Path, mutation, salt: int, tmp_path_factory,
                                       ) -> None:
    path = tmp_path_factory.mktemp("fuzz") / f"mutated{''.join(seed.suffixes)}"
    path.write_bytes(mutation(seed.read_bytes(), random.Random(salt)))
    check_inspect(path)


@settings(max_examples=200, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=4096), prefix=st.sampled_from([b"", b"PK\x03\x04", b"\x80\x02",
                                                                b"\x08\x00\x00\x00\x00\x00\x00\x00{"]))
def test_random_bytes_fail_cleanly(data: bytes, prefix: bytes, tmp_path_factory) -> None:
    path = tmp_path_factory.mktemp("random") / "random.pt"
    path.write_bytes(prefix + data)
    check_inspect(path)


@pytest.mark.parametrize("path", sorted(p for p in CORPUS.iterdir() if p.suffix != ".md"),
                         ids=lambda p: p.name)
def test_regression_corpus(path: Path) -> None:
    check_inspect(path)


@pytest.mark.parametrize("name", ["malicious.pt", "malicious_legacy.pt"])
def test_mutated_malicious_files_never_run(name: str, canary_dir: Path) -> None:
    seed = (FIXTURES / name).read_bytes()
    rng = random.Random(name)
    for index in range(60):
        mutation = MUTATIONS[index % len(MUTATIONS)]
        path = canary_dir / f"m{index}.pt"
        path.write_bytes(mutation(seed, rng))
        check_inspect(path)
    assert not (canary_dir / "ckpt_canary.txt").exists()
