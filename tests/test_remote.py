"""Checkpoints behind a URL: the same answers as for the local file, from a small part of it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from ckpt_tool.cli import app
from tests.conftest import FIXTURES
from tests.http_server import serve

runner = CliRunner()


def inspect_json(*args: str) -> tuple[int, dict, str]:
    result = runner.invoke(app, ["inspect", "--json", *args])
    return result.exit_code, json.loads(result.stdout), result.stderr


@pytest.mark.parametrize("name", ["checkpoint.pth.tar", "legacy.pt", "model.safetensors",
                                  "torchscript.pt", "custom_model.pt"])
def test_url_gives_the_local_answer(name: str) -> None:
    _, local, _ = inspect_json(str(FIXTURES / name))
    with serve(FIXTURES) as server:
        code, remote, _ = inspect_json(f"{server.url}/{name}")
    assert code == 0
    for key in ("format", "size", "tensors", "metadata", "globals", "weights_only"):
        assert remote["files"][0][key] == local["files"][0][key], key


@pytest.fixture(scope="module")
def big_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("big")
    state = {f"model.layers.{i}.mlp.{p}.weight": torch.zeros(256, 1024)
             for i in range(8) for p in ("up_proj", "down_proj")}
    torch.save(state, folder / "big.pt")
    return folder


def test_only_a_small_fraction_is_fetched(big_checkpoint: Path) -> None:
    size = (big_checkpoint / "big.pt").stat().st_size
    with serve(big_checkpoint) as server:
        code, doc, _ = inspect_json(f"{server.url}/big.pt")
        sent = server.bytes_sent
    assert code == 0
    entry = doc["files"][0]
    assert entry["tensor_count"] == 16
    assert sent < size / 50, (sent, size)
    assert entry["bytes_read"] <= sent


@pytest.mark.parametrize(
    ("mode", "path", "message"),
    [
        pytest.param("ignore-range", "state_dict.pt", "ignores HTTP Range", id="no-range"),
        pytest.param("html", "state_dict.pt", "", id="html-page"),
        pytest.param("range", "lfs_pointer.pt", "git lfs pull", id="lfs-pointer"),
        pytest.param("range", "missing.pt", "HTTP 404", id="not-found"),
    ],
)
def test_bad_servers_get_a_clear_error(mode: str, path: str, message: str) -> None:
    with serve(FIXTURES, mode) as server:
        result = runner.invoke(app, ["inspect", "-q", f"{server.url}/{path}"])
    assert result.exit_code == 2
    line = result.stderr.strip()
    assert line.startswith(f"ckpt: {server.url}/{path}: ")
    assert message.lower() in line.lower() and len(line.splitlines()) == 1


def test_other_schemes_need_the_remote_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "fsspec", None)
    result = runner.invoke(app, ["inspect", "s3://bucket/model.pt"])
    assert result.exit_code == 2
    assert "pip install fsspec" in result.stderr


@pytest.mark.parametrize("name", ["malicious.pt", "whole_model.pt", "legacy.pt", "state_dict.pth",
                                  "lfs_pointer.pt"])
def test_lint_over_a_url_finds_what_it_finds_locally(name: str, canary_dir: Path) -> None:
    local = runner.invoke(app, ["lint", "--format", "json", str(FIXTURES / name)])
    with serve(FIXTURES) as server:
        url = f"{server.url}/{name}"
        remote = runner.invoke(app, ["lint", "--format", "json", url])
    assert remote.exit_code == local.exit_code
    def codes(output: str) -> list[tuple[str, str | None]]:
        return [(f["code"], f["member"]) for f in json.loads(output)["findings"]]
    assert codes(remote.stdout) == codes(local.stdout)
    assert not (canary_dir / "ckpt_canary.txt").exists()


def test_diff_of_a_url_and_a_local_file() -> None:
    with serve(FIXTURES) as server:
        result = runner.invoke(app, ["diff", f"{server.url}/state_dict.pt",
                                     str(FIXTURES / "legacy.pt")])
    assert result.exit_code == 0, result.output


@pytest.fixture(scope="module")
def many_tensors(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """169 tensors of 16 KB: their local headers lie too far apart to share a request."""
    from safetensors.torch import save_file

    folder = tmp_path_factory.mktemp("many")
    torch.manual_seed(0)
    state = {f"h.{i}.w": torch.randn(64, 64) for i in range(169)}
    torch.save(state, folder / "pytorch_model.bin")
    save_file(state, str(folder / "model.safetensors"))
    return folder


@pytest.mark.parametrize(("name", "most"), [("pytorch_model.bin", 3), ("model.safetensors", 1)])
@pytest.mark.parametrize("command", ["inspect", "lint"])
def test_a_remote_checkpoint_costs_a_few_requests(many_tensors: Path, name: str, most: int,
                                                   command: str) -> None:
    with serve(many_tensors) as server:
        result = runner.invoke(app, [command, f"{server.url}/{name}"])
        requests, sent = server.requests, server.bytes_sent
    assert result.exit_code == 0, result.output
    assert requests <= most
    assert sent < (many_tensors / name).stat().st_size / 10


def test_remote_offsets_computed_from_the_directory_equal_the_local_headers(
        many_tensors: Path) -> None:
    _, local, _ = inspect_json(str(many_tensors / "pytorch_model.bin"))
    with serve(many_tensors) as server:
        _, remote, _ = inspect_json(f"{server.url}/pytorch_model.bin")
    assert remote["files"][0]["requests"] <= 3 and local["files"][0]["requests"] == 0
    assert [t["offset"] for t in remote["files"][0]["tensors"]] == [
        t["offset"] for t in local["files"][0]["tensors"]]


def test_a_predicted_offset_is_checked_against_the_local_header(tmp_path: Path) -> None:
    """A zip not written by torch puts its data elsewhere: reading bytes must notice."""
    from ckpt_tool.containers import zipdir
    from ckpt_tool.containers.source import FileSource
    from ckpt_tool.errors import FormatError
    from ckpt_tool.limits import DEFAULT_LIMITS
    from tests.archives import tensor_pickle, torch_archive

    path = tmp_path / "other-writer.pt"
    path.write_bytes(torch_archive(tensor_pickle(4), {"data/0": b"\0" * 16}))
    with FileSource(path) as source:
        members = zipdir.read_central_directory(source, DEFAULT_LIMITS)
        record = next(m for m in members if m.name.endswith("data/0"))
        actual = zipdir.data_offset(source, record)
        zipdir.check_data_offset(source, record, actual)
        with pytest.raises(FormatError, match="does not start where"):
            zipdir.check_data_offset(source, record, zipdir.predicted_data_offset(record))


@pytest.mark.parametrize(("name", "most"), [("pytorch_model.bin", 3), ("model.safetensors", 1)])
def test_lint_json_reports_the_requests_and_bytes_of_a_url(many_tensors: Path, name: str,
                                                            most: int) -> None:
    with serve(many_tensors) as server:
        result = runner.invoke(app, ["lint", "--format", "json", f"{server.url}/{name}"])
        requests, sent = server.requests, server.bytes_sent
    document = json.loads(result.stdout)
    (read,) = document["reads"]
    assert read["requests"] == requests <= most
    assert read["bytes_read"] == sent
    assert read["size"] == (many_tensors / name).stat().st_size
    assert document["summary"]["requests"] == requests
