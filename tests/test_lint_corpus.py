"""Every route to a callable, in every container, is CKPT002; no benign file is; and linting or
inspecting a hostile file runs nothing (the canary file is never written)."""

from __future__ import annotations

import contextlib
import pickle
from pathlib import Path

import pytest

from ckpt_tool.inspect.report import inspect_file
from ckpt_tool.lint import lint_file
from ckpt_tool.lint.config import DEFAULT_CODES, LintConfig
from ckpt_tool.lint.findings import RULES
from tests.conftest import FIXTURES
from tests.lint_corpus import (
    CANARY,
    CONTAINERS,
    PLAIN_BYTES,
    ROUTES,
    Route,
    benign_pickle,
    extension_registry,
)

ALL_RULES = LintConfig(selected=frozenset(RULES))
MALICIOUS_FIXTURES = ["malicious.pt", "malicious_legacy.pt"]
BENIGN_FIXTURES = sorted(  # producers/ (library classes: CKPT003) is tests/test_producers.py's
    str(path.relative_to(FIXTURES)) for path in FIXTURES.rglob("*")
    if path.is_file() and not path.name.startswith("malicious")
    and path.relative_to(FIXTURES).parts[0] != "producers"
)


def write(tmp_path: Path, route: Route, container: str) -> Path:
    name, data = CONTAINERS[container](route.pickle)
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("container", sorted(CONTAINERS))
@pytest.mark.parametrize("route", ROUTES, ids=[route.id for route in ROUTES])
def test_every_route_in_every_container_is_code_execution(
    route: Route, container: str, tmp_path: Path
) -> None:
    path = write(tmp_path, route, container)
    found = [f for f in lint_file(str(path)) if f.code == "CKPT002"]
    assert found, f"{route.id} in {container}: no CKPT002"
    if route.global_name is not None:
        assert any(f"`{route.global_name}`" in f.message for f in found), found
    assert any(route.opcode in f.message for f in found), found
    assert all(f.offset is not None for f in found)


@pytest.mark.parametrize("container", sorted(PLAIN_BYTES))
@pytest.mark.parametrize("route", ROUTES, ids=[route.id for route in ROUTES])
def test_a_pickle_kept_as_plain_bytes_is_data(route: Route, container: str, tmp_path: Path) -> None:
    """torch never unpickles a bytes value: the payload inside is no finding (issue 11)."""
    name, data = PLAIN_BYTES[container](route.pickle)
    path = tmp_path / name
    path.write_bytes(data)
    codes = {f.code for f in lint_file(str(path))}
    assert not codes & {"CKPT002", "CKPT003"}, container
    assert codes <= {"CKPT004"}  # for the protocol 3+ opcodes around the bytes, not the payload


@pytest.mark.parametrize("container", sorted(PLAIN_BYTES))
def test_torch_load_returns_the_plain_bytes_and_runs_nothing(container: str,
                                                             canary_dir: Path) -> None:
    import torch

    route = next(r for r in ROUTES if r.id == "global-reduce")
    name, data = PLAIN_BYTES[container](route.pickle)
    (canary_dir / name).write_bytes(data)
    loaded = torch.load(canary_dir / name, weights_only=False)
    assert isinstance(loaded["blob"], bytes)
    assert not (canary_dir / CANARY).exists()


def test_the_finding_says_which_global_where_and_by_which_opcode(tmp_path: Path) -> None:
    route = next(r for r in ROUTES if r.id == "stack-global-memo")
    path = write(tmp_path, route, "second-data-pkl")
    [finding] = [f for f in lint_file(str(path)) if f.code == "CKPT002"]
    assert finding.member == "other/data.pkl"
    assert finding.offset == route.pickle.index(b"\x93")
    assert "`builtins.exec` named by STACK_GLOBAL at offset" in finding.message
    assert "of other/data.pkl" in finding.message


def test_nested_payload_names_its_path(tmp_path: Path) -> None:
    route = next(r for r in ROUTES if r.id == "global-reduce")
    path = write(tmp_path, route, "zip-in-load-from-bytes")
    loader, finding = [f for f in lint_file(str(path)) if f.code == "CKPT002"]
    assert "`torch.storage._load_from_bytes`" in loader.message
    assert finding.member is not None
    assert finding.member.startswith("archive/data.pkl > BINBYTES argument at offset ")
    assert finding.member.endswith(" > inner/data.pkl")


@pytest.mark.parametrize("route", [r for r in ROUTES if r.live], ids=lambda r: r.id)
def test_live_routes_really_run_their_payload(route: Route, canary_dir: Path) -> None:
    """The corpus is not a set of broken pickles: plain pickle.loads runs each live one."""
    with extension_registry():
        pickle.loads(route.pickle)
    assert (canary_dir / CANARY).read_text().strip() == "pwned"


TORCH_LOAD_ROUTES = ["zip-encrypted-other-member", "plain-corrupt-after-global",
                     "safetensors-lookalike", "v7-tar", "tar-that-tarfile-refuses",
                     "tar-storages-only",
                     "tar-storages-hard-link"]


@pytest.mark.parametrize("container", TORCH_LOAD_ROUTES)
def test_torch_load_runs_the_payload_in_these_containers(container: str, canary_dir: Path) -> None:
    """Each of these files really runs its pickle under torch.load(weights_only=False), although
    none is a zip, a legacy stream or a pickle that reaches its STOP."""
    import torch

    route = next(r for r in ROUTES if r.id == "global-reduce")
    path = write(canary_dir, route, container)
    with contextlib.suppress(Exception):  # most fail, after running it
        torch.load(path, weights_only=False)
    assert (canary_dir / CANARY).read_text() == "pwned"


@pytest.mark.parametrize("name", BENIGN_FIXTURES)
def test_benign_fixtures_have_no_code_execution(name: str) -> None:
    findings = lint_file(str(FIXTURES / name), ALL_RULES)
    # These name code: a custom class (the omegaconf fixture's structured config enum too), a
    # torch.package (it imports the code it packages), a tensor subclass that torch.export
    # pickles whole (loaded with weights_only=False).
    runs_code = name.startswith(("containers/package", "containers/export_subclass"))
    custom = runs_code or name.startswith("custom_model") or name == "formats/omegaconf.pt"
    assert not [f for f in findings if (f.code == "CKPT002" and not runs_code) or
                (f.code == "CKPT003" and not custom)], findings


@pytest.mark.parametrize("protocol", range(6))
def test_benign_plain_pickles_have_no_findings(protocol: int, tmp_path: Path) -> None:
    path = tmp_path / "model.pkl"
    path.write_bytes(benign_pickle(protocol))
    assert lint_file(str(path)) == []


@pytest.mark.parametrize("name", ["whole_model.pt", "legacy_model.pt", "torchscript.pt"])
def test_torch_only_models_get_weights_only_refused_alone(name: str) -> None:
    codes = {f.code for f in lint_file(str(FIXTURES / name), ALL_RULES)}
    assert "CKPT004" in codes
    assert not codes & {"CKPT002", "CKPT003"}


def test_nothing_runs_during_lint_or_inspect(canary_dir: Path, tmp_path_factory) -> None:
    corpus = tmp_path_factory.mktemp("corpus")
    paths = [str(FIXTURES / name) for name in MALICIOUS_FIXTURES]
    for index, route in enumerate(ROUTES):
        for container in CONTAINERS:
            folder = corpus / f"{index}-{container}"
            folder.mkdir()
            paths.append(str(write(folder, route, container)))
    for path in paths:
        assert any(f.code == "CKPT002" for f in lint_file(path, ALL_RULES)), path
        inspect_file(path)
    assert not (canary_dir / CANARY).exists()
    assert ALL_RULES.selected >= DEFAULT_CODES
