"""fsspec URLs (s3://, hf://, memory://...) read as frugally as HTTP: a memory file system that
counts what it is asked stands in for a bucket."""

from __future__ import annotations

import io
import json
from collections import Counter
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch
from typer.testing import CliRunner

from ckpt_tool.api import expand_sources, inspect_one, lint_one
from ckpt_tool.cli import app

fsspec = pytest.importorskip("fsspec")
from fsspec.implementations.memory import MemoryFileSystem  # noqa: E402

runner = CliRunner()
PROTOCOL = "ckpttest"


class CountingFileSystem(MemoryFileSystem):
    """fsspec's memory file system under its own scheme, counting every metadata and data
    request and keeping the storage options it was made with."""

    protocol = PROTOCOL
    root_marker = "/"
    cachable = False  # a new instance for each URL opened, so its options are seen
    calls: ClassVar[Counter[str]] = Counter()
    options: ClassVar[list[dict[str, Any]]] = []

    def __init__(self, **options: Any) -> None:
        super().__init__()
        CountingFileSystem.options.append(options)

    @classmethod
    def _strip_protocol(cls, path: str) -> str:
        return super()._strip_protocol(str(path).removeprefix(f"{PROTOCOL}://"))

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        self.calls["info"] += 1
        return super().info(path, **kwargs)

    def cat_file(self, path: str, start: int | None = None, end: int | None = None,
                 **kwargs: Any) -> bytes:
        self.calls["cat_file"] += 1
        return super().cat_file(path, start=start, end=end, **kwargs)

    def find(self, path: str, *args: Any, **kwargs: Any) -> Any:
        self.calls["find"] += 1
        return super().find(path, *args, **kwargs)


@pytest.fixture(scope="module")
def bucket() -> dict[str, bytes]:
    """A 169-tensor pytorch_model.bin and model.safetensors, a README, in memory://models."""
    from safetensors.torch import save

    fsspec.register_implementation(PROTOCOL, CountingFileSystem, clobber=True)
    torch.manual_seed(0)
    state = {f"h.{i}.w": torch.randn(64, 64) for i in range(169)}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    files = {"pytorch_model.bin": buffer.getvalue(), "model.safetensors": save(state),
             "README.md": b"# a model\n"}
    memory = fsspec.filesystem("memory")
    for name, data in files.items():
        memory.pipe(f"/models/{name}", data)
    yield files
    for name in files:
        memory.rm(f"/models/{name}")


@pytest.fixture(autouse=True)
def counting() -> Counter[str]:
    CountingFileSystem.calls.clear()
    CountingFileSystem.options.clear()
    return CountingFileSystem.calls


@pytest.mark.parametrize(("name", "data_requests"), [("pytorch_model.bin", 2),
                                                     ("model.safetensors", 1)])
def test_a_url_costs_its_reads_plus_one_metadata_request(bucket, counting, name: str,
                                                          data_requests: int) -> None:
    result = inspect_one(f"{PROTOCOL}://models/{name}")
    entry = result["files"][0]
    assert result["error"] is None and entry["tensor_count"] == 169
    assert counting["cat_file"] == data_requests and counting["info"] == 1
    assert entry["requests"] == data_requests + 1
    assert entry["bytes_read"] < len(bucket[name]) / 10


@pytest.mark.parametrize(("name", "data_requests"), [("pytorch_model.bin", 2),
                                                     ("model.safetensors", 1)])
def test_a_size_from_a_listing_saves_the_metadata_request(bucket, counting, name: str,
                                                          data_requests: int) -> None:
    for function in (inspect_one, lint_one):
        counting.clear()
        result = function(f"{PROTOCOL}://models/{name}", size=len(bucket[name]))
        read = result["reads"][0] if "reads" in result else result["files"][0]
        assert result["error"] is None
        assert counting["info"] == 0 and counting["cat_file"] == data_requests
        assert read["requests"] == data_requests


def test_remote_answers_equal_the_local_ones(bucket, tmp_path) -> None:
    (tmp_path / "pytorch_model.bin").write_bytes(bucket["pytorch_model.bin"])
    local = inspect_one(tmp_path / "pytorch_model.bin")["files"][0]
    remote = inspect_one(f"{PROTOCOL}://models/pytorch_model.bin")["files"][0]
    for key in ("format", "size", "tensors", "globals", "weights_only"):
        assert remote[key] == local[key], key


def test_a_folder_url_expands_into_its_checkpoints_by_name(bucket, counting) -> None:
    rows = expand_sources([f"{PROTOCOL}://models"])
    assert [row["path"].rsplit("/", 1)[-1] for row in rows] == ["model.safetensors",
                                                                "pytorch_model.bin"]
    assert [row["size"] for row in rows] == [len(bucket["model.safetensors"]),
                                             len(bucket["pytorch_model.bin"])]
    assert all(row["path"].startswith(f"{PROTOCOL}://") for row in rows)
    assert counting["find"] == 1 and counting["cat_file"] == 0  # listed, nothing read


def test_lint_of_a_folder_url_reads_each_file_in_one_or_two_requests(bucket, counting) -> None:
    result = runner.invoke(app, ["lint", "--format", "json", f"{PROTOCOL}://models/"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert len(document["files"]["checked"]) == 2
    assert [item["path"].rsplit("/", 1)[-1] for item in document["files"]["skipped"]] == [
        "README.md"]
    requests = {read["path"].rsplit("/", 1)[-1]: read["requests"] for read in document["reads"]}
    assert requests == {"model.safetensors": 1, "pytorch_model.bin": 2}
    assert document["summary"]["requests"] == 3 == counting["cat_file"]


def test_show_files_lists_a_remote_folder(bucket) -> None:
    result = runner.invoke(app, ["lint", "--show-files", f"{PROTOCOL}://models"])
    assert result.exit_code == 0
    assert [line.rsplit("/", 1)[-1] for line in result.stdout.split()] == [
        "model.safetensors", "pytorch_model.bin"]
    assert "README.md: not named as a checkpoint" in result.stderr


def test_storage_options_reach_the_file_system(bucket) -> None:
    options = {"token": "secret", "anon": False}
    assert lint_one(f"{PROTOCOL}://models/model.safetensors", storage_options=options)[
        "exit_code"] == 0
    assert CountingFileSystem.options and all(o == options for o in CountingFileSystem.options)
    CountingFileSystem.options.clear()
    result = runner.invoke(app, ["inspect", "--json", "--storage-options", json.dumps(options),
                                 f"{PROTOCOL}://models"])
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)["files"]) == 2
    assert CountingFileSystem.options and all(o == options for o in CountingFileSystem.options)


def test_bad_storage_options_are_a_usage_error() -> None:
    result = runner.invoke(app, ["lint", "--storage-options", "[1]", "memory://x.pt"])
    assert result.exit_code == 2 and "JSON object" in result.stderr


@pytest.mark.parametrize("url", [f"{PROTOCOL}://models/missing.pt", f"{PROTOCOL}://empty/"])
def test_missing_remote_files_and_folders_are_errors_as_data(bucket, url: str) -> None:
    assert inspect_one(url)["error"]["exit_code"] == 2
    rows = expand_sources([url])
    assert len(rows) == 1 and (rows[0]["error"] or url.endswith(".pt"))


def test_hf_urls_say_what_to_install_without_huggingface_hub() -> None:
    import importlib.util

    if importlib.util.find_spec("huggingface_hub") is not None:
        pytest.skip("huggingface_hub is installed: hf:// would go to the network")
    result = inspect_one("hf://org/repo/model.safetensors")
    assert result["error"]["exit_code"] == 2
    assert "huggingface_hub" in result["error"]["message"]
    assert "huggingface_hub" in expand_sources(["hf://org/repo@main"])[0]["error"]


class FakeHub(MemoryFileSystem):
    """Stands in for huggingface_hub's ``HfFileSystem`` under the ``hf`` scheme, with its paths
    (``org/repo@revision/file``, no leading slash): the Hub itself is not reachable here."""

    protocol = "hf"
    root_marker = ""
    store: ClassVar[dict[str, Any]] = {}
    pseudo_dirs: ClassVar[list[str]] = [""]
    cachable = False

    @classmethod
    def _strip_protocol(cls, path: str) -> str:
        return str(path).removeprefix("hf://").strip("/")


@pytest.fixture
def hub(bucket) -> Any:
    fsspec.register_implementation("hf", FakeHub, clobber=True)
    hub = FakeHub()
    for name in ("pytorch_model.bin", "model.safetensors", "README.md"):
        hub.pipe(f"org/repo@v1/{name}", bucket[name])
    yield hub
    FakeHub.store.clear()
    from fsspec.registry import _registry

    _registry.pop("hf", None)  # back to huggingface_hub's HfFileSystem, if installed


def test_a_repository_by_id_expands_into_its_checkpoint_files(hub) -> None:
    rows = expand_sources(["hf://org/repo@v1"])
    assert [row["path"] for row in rows] == ["hf://org/repo@v1/model.safetensors",
                                             "hf://org/repo@v1/pytorch_model.bin"]
    results = [lint_one(row["path"], size=row["size"]) for row in rows]
    assert [result["exit_code"] for result in results] == [0, 0]
    assert inspect_one("hf://org/repo@v1/pytorch_model.bin")["files"][0]["tensor_count"] == 169


class Unreachable(MemoryFileSystem):
    """A backend whose network fails with its own exception type, as httpx, botocore and
    huggingface_hub raise theirs (not OSError)."""

    protocol = "unreachable"
    cachable = False

    def _fail(self, *args: Any, **kwargs: Any) -> Any:
        raise ConnectionAbortedByBackend("Name or service not known")

    info = size = cat_file = find = ls = _fail


class ConnectionAbortedByBackend(Exception):
    pass


@pytest.mark.parametrize("url", ["unreachable://org/model.pt", "unreachable://org/run/"])
def test_a_backends_own_errors_are_one_line_errors(url: str, tmp_path: Path) -> None:
    fsspec.register_implementation("unreachable", Unreachable, clobber=True)
    for command in (["inspect"], ["lint"], ["convert", "-o", str(tmp_path / "x.safetensors")]):
        result = runner.invoke(app, [*command, url])
        assert result.exception is None or isinstance(result.exception, SystemExit)
        assert result.exit_code in (1, 2), (command, result.output)
        assert "internal error" not in result.output
        assert "ConnectionAbortedByBackend: Name or service not known" in result.output
    assert inspect_one(url)["error"]["exit_code"] == 2
