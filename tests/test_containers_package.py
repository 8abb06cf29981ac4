"""torch.package archives against ``PackageImporter.load_pickle``: every pickled resource's tensors
by name, dtype, shape, stride and bytes; the format told from the records."""

from __future__ import annotations

import warnings
import zipfile
from pathlib import Path

import pytest
from torch.package import PackageImporter

from ckpt_tool.containers.source import FileSource
from ckpt_tool.limits import DEFAULT_LIMITS
from ckpt_tool.lint.config import LintConfig
from ckpt_tool.lint.engine import lint_file
from ckpt_tool.lint.findings import RULES
from ckpt_tool.model.checkpoint import Format, Loader
from ckpt_tool.model.tree import named_tensors
from ckpt_tool.readers import archive_format, open_checkpoint
from ckpt_tool.readers.torch_zip import TorchArchive
from tests.conftest import FIXTURES
from tests.torch_reference import flatten

CONTAINERS = FIXTURES / "containers"
PACKAGE = CONTAINERS / "package.pt"


def file_bytes(offset: int, length: int) -> bytes:
    with open(PACKAGE, "rb") as f:
        f.seek(offset)
        return f.read(length)


def test_every_pickled_resource_matches_package_importer() -> None:
    checkpoint = open_checkpoint(str(PACKAGE))
    assert checkpoint.format is Format.TORCH_PACKAGE
    importer = PackageImporter(str(PACKAGE))
    assert sorted(checkpoint.root) == ["model/linear.pkl", "model/scaler.pkl",
                                       "model/scripted.pkl", "weights/state.pkl"]
    for resource, value in checkpoint.root.items():
        package, name = resource.rsplit("/", 1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = flatten(importer.load_pickle(package, name))
        ours = dict(named_tensors(value))
        assert sorted(ours) == sorted(expected), resource
        for tensor_name, reference in expected.items():
            got = ours[tensor_name]
            where = f"{resource}:{tensor_name}"
            assert got.dtype.name == str(reference.dtype).removeprefix("torch."), where
            assert got.shape == tuple(reference.shape), where
            assert got.stride == reference.stride(), where
            assert got.storage_offset == reference.storage_offset(), where
            assert got.storage is not None and got.storage.offset is not None
            data = file_bytes(got.storage.offset, got.storage.nbytes)
            assert data == bytes(reference.untyped_storage()), where


def test_tied_tensors_share_one_storage_across_resources() -> None:
    checkpoint = open_checkpoint(str(PACKAGE))
    state = checkpoint.root["weights/state.pkl"]
    module_weight = dict(named_tensors(checkpoint.root["model/linear.pkl"]))["weight"]
    assert state["tied"][0].storage is state["linear"]["weight"].storage
    assert module_weight.storage is state["linear"]["weight"].storage


def test_packaged_torchscript_is_read_from_its_own_pickle() -> None:
    checkpoint = open_checkpoint(str(PACKAGE))
    scripted = dict(named_tensors(checkpoint.root["model/scripted.pkl"]))
    assert sorted(scripted) == ["bias", "weight"]
    loaders = {record.member: record.loader for record in checkpoint.pickles}
    assert loaders[".data/ts_code/0/data.pkl"] is Loader.TORCHSCRIPT
    assert loaders["weights/state.pkl"] is Loader.PACKAGE_IMPORTER
    assert loaders[".data/ts_code/0/constants.pkl"] is Loader.TORCHSCRIPT
    for record in checkpoint.pickles:
        assert file_bytes(record.data_offset, 1) == b"\x80", record.member


@pytest.mark.parametrize(("name", "expected"), [
    ("containers/package.pt", Format.TORCH_PACKAGE),
    ("containers/export.pt2", Format.TORCH_EXPORT),
    ("state_dict.pt", Format.TORCH_ZIP),
    ("torchscript.pt", Format.TORCHSCRIPT),
])
def test_zip_archives_are_told_apart_by_their_records(name: str, expected: Format,
                                                       tmp_path: Path) -> None:
    renamed = tmp_path / "renamed.bin"  # the name says nothing
    renamed.write_bytes((FIXTURES / name).read_bytes())
    with FileSource(renamed) as source:
        assert archive_format(TorchArchive(source, DEFAULT_LIMITS)) is expected


def test_lint_judges_the_package_instead_of_calling_it_unreadable() -> None:
    findings = lint_file(str(PACKAGE), LintConfig(selected=frozenset(RULES)))
    codes = {finding.code for finding in findings}
    assert "CKPT006" not in codes
    assert codes & {"CKPT002", "CKPT003"}  # PackageImporter imports the code it packages


def test_a_resource_that_only_looks_like_a_pickle_is_data(tmp_path: Path) -> None:
    path = tmp_path / "package.pt"
    with zipfile.ZipFile(PACKAGE) as source, zipfile.ZipFile(path, "w") as target:
        for info in source.infolist():
            target.writestr(info, source.read(info))
        target.writestr("package/blobs/raw.bin", b"\x80\x02 not a pickle")
    checkpoint = open_checkpoint(str(path))
    assert "blobs/raw.bin" not in checkpoint.root
    assert any("blobs/raw.bin" in anomaly.message for anomaly in checkpoint.anomalies)
