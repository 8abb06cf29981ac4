"""torch.distributed.checkpoint folders against torch's own readers: ``dcp_to_torch_save`` for the
logical tensors and values, ``FileSystemReader`` / ``HuggingFaceStorageReader`` for the metadata
and each chunk's bytes."""

from __future__ import annotations

import io
import json
import os
import pickle
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch.distributed.checkpoint import FileSystemReader, HuggingFaceStorageReader
from torch.distributed.checkpoint.default_planner import _EmptyStateDictLoadPlanner
from torch.distributed.checkpoint.format_utils import dcp_to_torch_save
from torch.distributed.checkpoint.state_dict_loader import _load_state_dict
from typer.testing import CliRunner

from ckpt_tool.cli import app
from ckpt_tool.diff import diff_reports
from ckpt_tool.errors import FormatError
from ckpt_tool.inputs import expand_inputs
from ckpt_tool.inspect.report import inspect_file
from ckpt_tool.model.checkpoint import Format, Loader, TensorRef
from ckpt_tool.model.tree import walk
from ckpt_tool.readers import open_checkpoint
from ckpt_tool.readers.tensor_bytes import TensorFiles
from tests.conftest import FIXTURES
from tests.torch_reference import flatten

CONTAINERS = FIXTURES / "containers"
TORCH_SAVE_DCP = ["dcp_single", "dcp_2ranks"]


def torch_state(folder: Path, rank: int | None = None) -> dict[str, Any]:
    """What torch rebuilds from the folder: ``dcp_to_torch_save``'s load, or for one rank's own
    metadata the same load through ``read_metadata(rank=...)``."""

    class RankReader(FileSystemReader):
        def read_metadata(self, *args: Any, **kwargs: Any) -> Any:
            return super().read_metadata(rank=rank)

    state: dict[str, Any] = {}
    reader = FileSystemReader(str(folder)) if rank is None else RankReader(str(folder))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _load_state_dict(state, storage_reader=reader, planner=_EmptyStateDictLoadPlanner(),
                         no_dist=True)
    return state


def leaves(value: Any, prefix: str = "") -> dict[str, Any]:
    """Every non-tensor leaf by dotted name, the way ckpt names them."""
    join = (lambda k: f"{prefix}.{k}") if prefix else str
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in leaves(item, join(key)).items()}
    if isinstance(value, list) and any(isinstance(v, dict | list | torch.Tensor) for v in value):
        return {k: v for i, item in enumerate(value) for k, v in leaves(item, join(i)).items()}
    return {} if isinstance(value, torch.Tensor) else {prefix: value}


def tensor_bytes(files: TensorFiles, tensor: TensorRef) -> bytes:
    return files.values(tensor).tobytes()


def c_order_bytes(tensor: torch.Tensor) -> bytes:
    return bytes(tensor.clone(memory_format=torch.contiguous_format).untyped_storage())


def assert_same_as_torch(checkpoint_path: str, expected: dict[str, Any]) -> None:
    checkpoint = open_checkpoint(checkpoint_path)
    assert checkpoint.format is Format.DCP
    ours = {leaf.name: leaf.value for leaf in walk(checkpoint.root)}
    theirs = flatten(expected)
    tensors = {name: value for name, value in ours.items() if isinstance(value, TensorRef)}
    assert sorted(tensors) == sorted(theirs)
    with TensorFiles(checkpoint.path) as files:
        for name, reference in theirs.items():
            got = tensors[name]
            assert got.dtype.name == str(reference.dtype).removeprefix("torch."), name
            assert got.shape == tuple(reference.shape), name
            assert tensor_bytes(files, got) == c_order_bytes(reference), name
    values = {name: value for name, value in ours.items() if not isinstance(value, TensorRef)}
    assert values == leaves(expected)


@pytest.mark.parametrize("name", TORCH_SAVE_DCP)
def test_folder_reads_as_dcp_to_torch_save_loads_it(name: str, tmp_path: Path) -> None:
    target = tmp_path / "full.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dcp_to_torch_save(str(CONTAINERS / name), str(target))
    assert_same_as_torch(str(CONTAINERS / name), torch.load(target, weights_only=False))


@pytest.mark.parametrize("rank", [0, 1])
def test_rank_local_metadata_is_that_rank_own_checkpoint(rank: int) -> None:
    folder = CONTAINERS / "dcp_rank_local"
    expected = torch_state(folder, rank)
    assert expected["rank"] == rank
    assert_same_as_torch(str(folder / f"__{rank}.metadata"), expected)


@pytest.mark.parametrize("name", TORCH_SAVE_DCP)
def test_chunks_match_torch_metadata_and_slices(name: str) -> None:
    """Each chunk: offsets and sizes as torch's metadata says, its bytes where we say, equal to
    what FileSystemReader's torch.load of that slice gives."""
    folder = CONTAINERS / name
    metadata = FileSystemReader(str(folder)).read_metadata()
    checkpoint = open_checkpoint(str(folder))
    tensors = {leaf.name: leaf.value for leaf in walk(checkpoint.root) if leaf.is_tensor}
    assert sorted(tensors) == sorted(fqn for fqn, item in metadata.state_dict_metadata.items()
                                     if hasattr(item, "chunks"))
    for fqn, item in metadata.state_dict_metadata.items():
        if not hasattr(item, "chunks"):
            continue
        tensor = tensors[fqn]
        assert tensor.shape == tuple(item.size)
        assert [(c.offsets, c.sizes) for c in tensor.chunks] == [
            (tuple(c.offsets), tuple(c.sizes)) for c in item.chunks]
        for chunk in tensor.chunks:
            info = next(v for k, v in metadata.storage_data.items()
                        if k.fqn == fqn and tuple(k.offset) == chunk.offsets)
            assert chunk.file == str(folder / info.relative_path)
            assert info.offset <= chunk.tensor.offset < info.offset + info.length
            with open(folder / info.relative_path, "rb") as f:
                f.seek(info.offset)
                piece = torch.load(io.BytesIO(f.read(info.length)), weights_only=True)
                f.seek(chunk.tensor.offset)
                raw = f.read(chunk.tensor.nbytes)
            assert raw == bytes(piece.untyped_storage())


def test_sharded_chunks_lie_in_each_rank_file() -> None:
    report = inspect_file(str(CONTAINERS / "dcp_2ranks"))
    rows = {row.name: row.tensor for row in report.tensors}
    rows_chunks = rows["model.rows"].chunks
    assert [c.offsets for c in rows_chunks] == [(0, 0), (4, 0)]
    assert [os.path.basename(c.file or "") for c in rows_chunks] == ["__0_0.distcp",
                                                                     "__1_0.distcp"]
    assert [c.offsets for c in rows["model.cols"].chunks] == [(0, 0), (0, 3)]
    assert [c.sizes for c in rows["model.uneven"].chunks] == [(3, 3), (2, 3)]
    by_file = {os.path.basename(k): v for k, v in report.bytes_by_file().items()}
    assert sum(by_file.values()) == report.total_bytes
    assert set(by_file) == {"__0_0.distcp", "__1_0.distcp"}


def test_safetensors_backed_dcp_matches_huggingface_storage_reader() -> None:
    folder = CONTAINERS / "dcp_safetensors"
    metadata = HuggingFaceStorageReader(str(folder)).read_metadata()
    checkpoint = open_checkpoint(str(folder))
    assert checkpoint.format is Format.DCP and checkpoint.pickles == []
    assert sorted(checkpoint.root) == sorted(metadata.state_dict_metadata)
    state = {fqn: torch.empty(item.size, dtype=item.properties.dtype)
             for fqn, item in metadata.state_dict_metadata.items()}
    reader = HuggingFaceStorageReader(str(folder))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _load_state_dict(state, storage_reader=reader, no_dist=True)
    with TensorFiles(checkpoint.path) as files:
        for fqn, item in metadata.state_dict_metadata.items():
            tensor = checkpoint.root[fqn]
            assert tensor.shape == tuple(item.size)
            assert tensor.dtype.name == str(item.properties.dtype).removeprefix("torch.")
            assert sorted(c.offsets for c in tensor.chunks) == sorted(
                tuple(c.offsets) for c in item.chunks)
            assert tensor_bytes(files, tensor) == c_order_bytes(state[fqn])


@pytest.mark.parametrize("name", TORCH_SAVE_DCP)
def test_folder_and_its_metadata_file_are_the_same_input(name: str) -> None:
    by_folder = inspect_file(str(CONTAINERS / name))
    by_file = inspect_file(str(CONTAINERS / name / ".metadata"))
    assert by_folder.ok and by_file.ok
    assert [(r.name, r.tensor.shape) for r in by_folder.tensors] == [
        (r.name, r.tensor.shape) for r in by_file.tensors]
    assert by_folder.checkpoint and by_folder.checkpoint.size == sum(
        p.stat().st_size for p in (CONTAINERS / name).iterdir())


def test_walking_a_parent_folder_keeps_each_dcp_checkpoint_whole() -> None:
    inputs = {os.path.relpath(item.path, CONTAINERS) for item in expand_inputs([str(CONTAINERS)])}
    assert {"dcp_single", "dcp_2ranks", "dcp_safetensors", "dcp_rank_local/__0.metadata",
            "dcp_rank_local/__1.metadata"} <= inputs
    assert not [path for path in inputs if path.endswith((".distcp", ".safetensors"))]


def test_inspect_json_lists_chunks_and_files() -> None:
    result = CliRunner().invoke(app, ["inspect", str(CONTAINERS / "dcp_2ranks"), "--json"])
    assert result.exit_code == 0, result.output
    [entry] = json.loads(result.output)["files"]
    assert entry["format"] == "dcp" and entry["error"] is None
    rows = {t["name"]: t for t in entry["tensors"]}
    chunk = rows["model.cols"]["chunks"][1]
    assert (chunk["offsets"], chunk["sizes"], os.path.basename(chunk["file"])) == (
        [0, 3], [4, 3], "__1_0.distcp")
    with open(chunk["file"], "rb") as f:
        f.seek(chunk["offset"])
        assert len(f.read(chunk["nbytes"])) == chunk["nbytes"] == 48
    files = {os.path.basename(f["path"]): f for f in entry["files"]}
    assert set(files) == {".metadata", "__0_0.distcp", "__1_0.distcp"}
    assert files[".metadata"]["tensor_bytes"] == 0


def test_inspect_view_shows_chunk_splits_and_stats() -> None:
    result = CliRunner().invoke(app, ["inspect", str(CONTAINERS / "dcp_2ranks"), "--stats",
                                      "--no-tree"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "2 (dim 1)" in result.output and "__1_0.distcp" in result.output
    full = torch_state(CONTAINERS / "dcp_2ranks")["model"]["cols"]
    assert f"{float(full.max()):.4g}" in result.output


def test_pickles_are_listed_with_their_loader() -> None:
    checkpoint = open_checkpoint(str(CONTAINERS / "dcp_single"))
    loaders = {record.loader for record in checkpoint.pickles}
    assert loaders == {Loader.PICKLE, Loader.TORCH_LOAD_WEIGHTS_ONLY, Loader.TORCH_LOAD_FULL}
    for record in checkpoint.pickles:
        assert record.file is not None
        with open(record.file, "rb") as f:
            f.seek(record.data_offset)
            assert f.read(1) == b"\x80", record.member
    assert checkpoint.weights_only.accepted is None


def test_diff_against_the_consolidated_file_is_equal(tmp_path: Path) -> None:
    target = tmp_path / "full.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dcp_to_torch_save(str(CONTAINERS / "dcp_single"), str(target))
    result = diff_reports(inspect_file(str(CONTAINERS / "dcp_single")), inspect_file(str(target)),
                          values=True)
    assert result.equal and result.tensors
    assert all(t.identical for t in result.tensors)


def _rewrite_metadata(tmp_path: Path, change: Any) -> Path:
    folder = tmp_path / "dcp"
    shutil.copytree(CONTAINERS / "dcp_single", folder)
    with open(folder / ".metadata", "rb") as f:
        metadata = pickle.load(f)  # torch's own classes: test code, trusted fixture
    change(metadata)
    with open(folder / ".metadata", "wb") as f:
        pickle.dump(metadata, f)
    return folder


def _first_info(metadata: Any) -> Any:
    return next(iter(metadata.storage_data.values()))


@pytest.mark.parametrize(("change", "message"), [
    pytest.param(lambda m: setattr(_first_info(m), "relative_path", "../elsewhere.distcp"),
                 "outside its folder", id="data-file-outside"),
    pytest.param(lambda m: setattr(_first_info(m), "relative_path", "__9_0.distcp"),
                 "__9_0.distcp", id="data-file-missing"),
    pytest.param(lambda m: setattr(_first_info(m), "offset", 10**9), "past the end",
                 id="slice-past-end"),
    pytest.param(lambda m: m.state_dict_metadata["model.0.weight"].chunks[0].__setattr__(
        "sizes", torch.Size([30, 4])), "lies outside", id="chunk-outside-tensor"),
])
def test_damaged_metadata_is_a_one_line_error(tmp_path: Path, change: Any, message: str) -> None:
    folder = _rewrite_metadata(tmp_path, change)
    with pytest.raises(FormatError, match=message):
        open_checkpoint(str(folder))


def test_missing_chunk_is_reported(tmp_path: Path) -> None:
    def drop_half(metadata: Any) -> None:
        item = metadata.state_dict_metadata["model.0.weight"]
        item.size = torch.Size([6, 4])  # the one chunk now covers half of it

    checkpoint = open_checkpoint(str(_rewrite_metadata(tmp_path, drop_half)))
    assert any("12 of its 24 elements" in a.message for a in checkpoint.anomalies)


def test_a_global_in_the_metadata_is_never_called(tmp_path: Path, canary_dir: Path) -> None:
    class Payload:
        def __reduce__(self) -> Any:
            return (exec, ("open('ckpt_canary.txt', 'w').write('pwned')",))

    folder = _rewrite_metadata(tmp_path, lambda m: setattr(m.storage_meta, "modules",
                                                            [Payload()]))
    checkpoint = open_checkpoint(str(folder))
    assert not (canary_dir / "ckpt_canary.txt").exists()
    assert "builtins.exec" in {g.full_name for g in checkpoint.globals}


def test_a_lone_data_file_names_its_folder() -> None:
    result = CliRunner().invoke(app, ["inspect", str(CONTAINERS / "dcp_2ranks" /
                                                     "__1_0.distcp")])
    assert result.exit_code == 2
    assert "data file of the DCP checkpoint" in result.output


def test_values_assembled_from_chunks_equal_numpy_of_torch() -> None:
    """The assembly itself, on a tensor split along dim 1 (not contiguous pieces)."""
    checkpoint = open_checkpoint(str(CONTAINERS / "dcp_2ranks"))
    full = torch_state(CONTAINERS / "dcp_2ranks")["model"]["cols"].numpy()
    with TensorFiles(checkpoint.path) as files:
        values = files.values(checkpoint.root["model"]["cols"])
    np.testing.assert_array_equal(values.reshape(full.shape), full)


def test_metadata_records_decode_as_plain_data() -> None:
    """The restricted unpickler turns torch's metadata classes into records, importing nothing;
    each is one that lint knows builds only data."""
    from ckpt_tool.model.checkpoint import Safety
    from ckpt_tool.model.objects import DataRecord
    from ckpt_tool.pickles.safety import classify
    from ckpt_tool.pickles.unpickler import DATA_RECORDS, unpickle

    data = (CONTAINERS / "dcp_2ranks" / ".metadata").read_bytes()
    metadata, referenced = unpickle(data, protocol=4)
    assert isinstance(metadata, DataRecord) and metadata.type_name() == "Metadata"
    item = metadata.get("state_dict_metadata")["model.half"]
    properties = item.get("properties")
    assert properties.get("dtype").name == "bfloat16"
    assert properties.get("memory_format") == "contiguous_format"
    assert [c.get("offsets") for c in item.get("chunks")] == [(0, 0), (3, 0)]
    assert ("pathlib", "PosixPath") in referenced  # storage_meta.checkpoint_id, inert
    assert all(classify(*name.rsplit(".", 1)) is Safety.DATA for name in DATA_RECORDS)


def test_a_dcp_metadata_url_reads_its_data_files_beside_it() -> None:
    from tests.http_server import serve

    with serve(CONTAINERS) as server:
        result = CliRunner().invoke(app, ["inspect", "--json",
                                          f"{server.url}/dcp_2ranks/.metadata"])
    assert result.exit_code == 0, result.output
    remote = json.loads(result.output)["files"][0]
    local = json.loads(CliRunner().invoke(
        app, ["inspect", "--json", str(CONTAINERS / "dcp_2ranks")]).output)["files"][0]
    assert [(t["name"], t["shape"], [c["offsets"] for c in t["chunks"]])
            for t in remote["tensors"]] == [
        (t["name"], t["shape"], [c["offsets"] for c in t["chunks"]]) for t in local["tensors"]]
    assert remote["tensors"][0]["chunks"][1]["file"] == f"{server.url}/dcp_2ranks/__1_0.distcp"


@pytest.mark.parametrize("protocol", [0, 2, 5])
def test_metadata_pickled_at_any_protocol_is_found_and_read(protocol: int,
                                                            tmp_path: Path) -> None:
    folder = _rewrite_metadata(tmp_path, lambda metadata: None)
    metadata = pickle.loads((folder / ".metadata").read_bytes())
    (folder / ".metadata").write_bytes(pickle.dumps(metadata, protocol=protocol))
    checkpoint = open_checkpoint(str(folder))
    assert checkpoint.pickle_protocol == protocol
    assert len([leaf for leaf in walk(checkpoint.root) if leaf.is_tensor]) == 21
