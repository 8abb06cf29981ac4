"""torch.export ``.pt2`` archives against ``torch.export.load`` / ``load_pt2``: every model's
weights and constants by name, dtype, shape, stride, storage offset and bytes, and convert to
safetensors bit-exact."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file
from torch._export.serde.serialize import _SERIALIZE_TO_TORCH_DTYPE
from torch.export.pt2_archive._package import load_pt2
from typer.testing import CliRunner

from ckpt_tool.cli import app
from ckpt_tool.model.checkpoint import Format, Loader, TensorRef
from ckpt_tool.model.tree import named_tensors
from ckpt_tool.readers import open_checkpoint
from ckpt_tool.readers.torch_export import SCALAR_TYPES
from tests.conftest import FIXTURES

CONTAINERS = FIXTURES / "containers"
ARCHIVES = ["export.pt2", "export_models.pt2", "export_subclass.pt2"]


def load_programs(path: Path) -> dict[str, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_pt2(str(path)).exported_programs


def file_bytes(path: Path, offset: int, length: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(length)


def test_scalar_type_codes_are_torch_own() -> None:
    assert {code: dtype.name for code, dtype in SCALAR_TYPES.items()} == {
        int(code): str(dtype).removeprefix("torch.")
        for code, dtype in _SERIALIZE_TO_TORCH_DTYPE.items()}


@pytest.mark.parametrize("name", ARCHIVES)
def test_weights_and_constants_match_load_pt2(name: str) -> None:
    path = CONTAINERS / name
    checkpoint = open_checkpoint(str(path))
    assert checkpoint.format is Format.TORCH_EXPORT
    programs = load_programs(path)
    assert sorted(m for m in checkpoint.root if m != "extra_files") == sorted(programs)
    for model, program in programs.items():
        for part, expected in (("state_dict", program.state_dict),
                               ("constants", program.constants)):
            ours = checkpoint.root[model][part]
            assert list(ours) == list(expected), (model, part)
            for fqn, reference in expected.items():
                assert_same_tensor(path, ours[fqn], reference, f"{model}.{part}.{fqn}")


def assert_same_tensor(path: Path, got: TensorRef, reference: torch.Tensor, name: str) -> None:
    assert got.dtype.name == str(reference.dtype).removeprefix("torch."), name
    assert got.shape == tuple(reference.shape), name
    assert got.stride == reference.stride(), name
    assert got.requires_grad == reference.requires_grad, name
    if type(reference) not in (torch.Tensor, torch.nn.Parameter):  # pickled whole
        assert got.kind == "subclass" and got.storage is None, name
        return
    assert got.kind == ("parameter" if isinstance(reference, torch.nn.Parameter) else "tensor")
    assert got.storage_offset == reference.storage_offset(), name
    assert got.storage is not None and got.storage.offset is not None, name
    record = file_bytes(path, got.storage.offset, got.storage.nbytes)
    assert record == bytes(reference.untyped_storage()), name


def test_single_model_matches_torch_export_load() -> None:
    path = CONTAINERS / "export.pt2"
    extra: dict[str, Any] = {"notes.txt": ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.export.load(str(path), extra_files=extra)
    checkpoint = open_checkpoint(str(path))
    assert checkpoint.root["extra_files"] == extra
    ours = dict(named_tensors(checkpoint.root["model"]["state_dict"]))
    assert sorted(ours) == sorted(program.state_dict)
    for fqn, reference in program.state_dict.items():
        assert_same_tensor(path, ours[fqn], reference, fqn)


def test_views_of_one_record_share_its_storage() -> None:
    checkpoint = open_checkpoint(str(CONTAINERS / "export.pt2"))
    weights = checkpoint.root["model"]["state_dict"]
    head, tail = weights["head"], weights["tail"]
    assert head.storage is tail.storage
    assert (head.storage_offset, tail.storage_offset) == (0, 4)


def test_models_of_a_multi_model_archive_are_listed() -> None:
    checkpoint = open_checkpoint(str(CONTAINERS / "export_models.pt2"))
    assert sorted(checkpoint.root) == ["decoder", "encoder"]
    assert sorted(checkpoint.root["decoder"]["state_dict"]) == ["out.bias", "out.weight"]


def test_pickled_members_are_listed_not_unpickled() -> None:
    checkpoint = open_checkpoint(str(CONTAINERS / "export_subclass.pt2"))
    members = {record.member: record for record in checkpoint.pickles}
    assert set(members) == {"export_subclass/data/sample_inputs/model.pt/archive/data.pkl",
                            "export_subclass/data/weights/weight_0/archive/data.pkl"}
    assert {record.loader for record in members.values()} == {Loader.TORCH_LOAD_FULL}
    for record in members.values():
        assert file_bytes(CONTAINERS / "export_subclass.pt2", record.data_offset, 1) == b"\x80"
    assert "torch.testing._internal.two_tensor.TwoTensor" in {
        g.full_name for g in checkpoint.globals}
    pair = checkpoint.root["model"]["state_dict"]["pair"]
    assert pair.kind == "subclass" and pair.extra["pickled_in"] == "data/weights/weight_0"


def test_convert_writes_the_weights_bit_exact(tmp_path: Path) -> None:
    path = CONTAINERS / "export.pt2"
    out = tmp_path / "model.safetensors"
    result = CliRunner().invoke(app, ["convert", str(path), "--to", "safetensors", "-o",
                                      str(out)])
    assert result.exit_code == 0, result.output
    written = load_file(str(out))
    expected = load_programs(path)["model"].state_dict
    assert sorted(written) == sorted(expected)
    for fqn, reference in expected.items():
        assert written[fqn].dtype == reference.dtype
        assert bytes(written[fqn].contiguous().untyped_storage()) == bytes(
            reference.detach().clone(memory_format=torch.contiguous_format).untyped_storage())


def test_convert_refuses_a_pickled_subclass_weight(tmp_path: Path) -> None:
    out = tmp_path / "model.safetensors"
    result = CliRunner().invoke(app, ["convert", str(CONTAINERS / "export_subclass.pt2"), "--to",
                                      "safetensors", "-o", str(out), "--skip-unsupported"])
    assert result.exit_code == 0, result.output
    assert "pair" in result.output and "pickled whole in data/weights/weight_0" in result.output
    assert sorted(load_file(str(out))) == ["plain"]


def test_inspect_names_the_format() -> None:
    result = CliRunner().invoke(app, ["inspect", str(CONTAINERS / "export.pt2"), "--json"])
    assert result.exit_code == 0, result.output
    assert '"format": "torch-export"' in result.output


def test_a_pt2_is_never_copied_under_a_torch_save_name(tmp_path: Path) -> None:
    out = tmp_path / "model.pt"
    result = CliRunner().invoke(app, ["convert", str(CONTAINERS / "export.pt2"), "--to", "pt",
                                      "-o", str(out)])
    assert result.exit_code != 0 and "not a torch.save file" in result.output
    assert not out.exists()


def test_opaque_and_torchscript_constants_are_listed_as_pickles(tmp_path: Path) -> None:
    """The constants torch unpickles whole (opaque objects with pickle.loads, TorchScript objects
    with torch._C._pickle_load_obj), added to a real archive the way _package_constants writes
    them: listed as pickles, their globals named, nothing unpickled."""
    import json
    import pickle
    import zipfile

    path = tmp_path / "objects.pt2"
    config_name = "export/data/constants/model_constants_config.json"
    with zipfile.ZipFile(CONTAINERS / "export.pt2") as source, \
            zipfile.ZipFile(path, "w") as target:
        for info in source.infolist():
            data = source.read(info)
            if info.filename == config_name:
                config = json.loads(data)
                config["config"]["opaque"] = {"path_name": "opaque_obj_0", "is_param": False,
                                              "use_pickle": True, "tensor_meta": None}
                config["config"]["scripted"] = {"path_name": "custom_obj_0", "is_param": False,
                                                "use_pickle": True, "tensor_meta": None}
                data = json.dumps(config).encode()
            target.writestr(info, data)
        target.writestr("export/data/constants/opaque_obj_0",
                        pickle.dumps(Path("x"), protocol=2))
        target.writestr("export/data/constants/custom_obj_0", pickle.dumps([1, 2], protocol=2))
    checkpoint = open_checkpoint(str(path))
    loaders = {record.member: record.loader for record in checkpoint.pickles}
    assert loaders["export/data/constants/opaque_obj_0"] is Loader.PICKLE
    assert loaders["export/data/constants/custom_obj_0"] is Loader.TORCHSCRIPT
    constants = checkpoint.root["model"]["constants"]
    assert "pickle.loads" in constants["opaque"]
    assert "pathlib.PosixPath" in {g.full_name for g in checkpoint.globals}


def test_diff_of_the_archive_and_its_conversion_is_equal(tmp_path: Path) -> None:
    from ckpt_tool.diff import diff_reports
    from ckpt_tool.inspect.report import inspect_file

    out = tmp_path / "model.safetensors"
    assert CliRunner().invoke(app, ["convert", str(CONTAINERS / "export.pt2"), "--to",
                                    "safetensors", "-o", str(out)]).exit_code == 0
    result = diff_reports(inspect_file(str(CONTAINERS / "export.pt2")), inspect_file(str(out)),
                          values=True)
    assert result.equal and len(result.tensors) == 6
    assert all(t.identical for t in result.tensors)
