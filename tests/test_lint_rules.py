"""Each rule, positive and negative, through ``lint_file`` (the engine, no CLI)."""

from __future__ import annotations

import io
import pickle
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from ckpt_tool.lint import lint_file
from ckpt_tool.lint.config import LintConfig
from ckpt_tool.lint.findings import RULES, Severity
from ckpt_tool.lint.policy import AllowedGlobals
from ckpt_tool.lint.rules_file import find_import_line
from tests.conftest import FIXTURES
from tests.lint_corpus import (
    EMPTY_TUPLE,
    NEWOBJ,
    STOP,
    benign_pickle,
    glob,
    legacy_stream,
    proto,
    torch_tar,
    torch_zip,
)

ALL_RULES = LintConfig(selected=frozenset(RULES))
TORCH_CLASS_PICKLE = (proto(2) + glob("torch.nn.modules.linear", "Linear") + EMPTY_TUPLE + NEWOBJ
                      + STOP)


def fixture(name: str) -> Callable[[Path], Path]:
    return lambda _: FIXTURES / name


def built(name: str, data: bytes | Callable[[], bytes]) -> Callable[[Path], Path]:
    def make(tmp_path: Path) -> Path:
        path = tmp_path / name
        path.write_bytes(data() if callable(data) else data)
        return path
    return make


def renamed(fixture_name: str, name: str) -> Callable[[Path], Path]:
    return built(name, lambda: (FIXTURES / fixture_name).read_bytes())


def plain_tar() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("notes.txt")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"hello"))
    return buffer.getvalue()


def with_import_line(key: str) -> bytes:
    return torch_zip({"data.pkl": pickle.dumps({key: 1}, protocol=2)})


def truncated(name: str) -> Callable[[], bytes]:
    return lambda: (FIXTURES / name).read_bytes()[:-200]


def compressed_data_record() -> bytes:
    source = zipfile.ZipFile(FIXTURES / "state_dict.pt")
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            method = zipfile.ZIP_DEFLATED if "/data/" in info.filename else zipfile.ZIP_STORED
            target.writestr(info.filename, source.read(info), compress_type=method)
    return out.getvalue()


CASES = [
    # CKPT001 pth-extension
    pytest.param("CKPT001", fixture("state_dict.pth"), True, id="001-checkpoint-named-pth"),
    pytest.param("CKPT001", built("m.pth", with_import_line("\nimport os\n")), True,
                 id="001-import-line"),
    pytest.param("CKPT001", fixture("pathconfig.pth"), False, id="001-path-config-text"),
    pytest.param("CKPT001", fixture("state_dict.pt"), False, id="001-named-pt"),
    pytest.param("CKPT001", fixture("checkpoint.pth.tar"), False, id="001-pth-tar"),
    pytest.param("CKPT001", renamed("state_dict.pt", "m.PTH"), False, id="001-upper-case"),
    # CKPT002 code-execution (the full corpus is in test_lint_corpus.py)
    pytest.param("CKPT002", fixture("malicious.pt"), True, id="002-malicious"),
    pytest.param("CKPT002", fixture("malicious_legacy.pt"), True, id="002-malicious-legacy"),
    pytest.param("CKPT002", fixture("whole_model.pt"), False, id="002-torch-nn-model"),
    pytest.param("CKPT002", fixture("metadata.pt"), False, id="002-numpy-namespace"),
    pytest.param("CKPT002", fixture("torchscript.pt"), False, id="002-torchscript"),
    # CKPT003 custom-class
    pytest.param("CKPT003", fixture("custom_model.pt"), True, id="003-custom-model"),
    pytest.param("CKPT003", fixture("whole_model.pt"), False, id="003-torch-nn-model"),
    pytest.param("CKPT003", fixture("torchscript.pt"), False, id="003-torchscript"),
    pytest.param("CKPT003", fixture("metadata.pt"), False, id="003-numpy-namespace"),
    pytest.param("CKPT003", built("m.pkl", TORCH_CLASS_PICKLE), True, id="003-torch-class-plain"),
    # A bytes value is only data: torch never unpickles it (issue 11).
    pytest.param("CKPT003", built("m.pt", torch_zip({"data.pkl": pickle.dumps(
        {"blob": TORCH_CLASS_PICKLE}, protocol=3)})), False, id="003-torch-class-in-bytes"),
    # CKPT004 weights-only-refused
    pytest.param("CKPT004", fixture("whole_model.pt"), True, id="004-torch-nn-model"),
    pytest.param("CKPT004", fixture("protocol4.pt"), True, id="004-protocol-4-opcodes"),
    pytest.param("CKPT004", fixture("torchscript.pt"), True, id="004-torchscript"),
    pytest.param("CKPT004", built("old.pth.tar", torch_tar(benign_pickle())), True,
                 id="004-torch-tar"),
    pytest.param("CKPT004", fixture("state_dict.pt"), False, id="004-state-dict"),
    pytest.param("CKPT004", fixture("legacy.pt"), False, id="004-legacy-state-dict"),
    pytest.param("CKPT004", fixture("model.safetensors"), False, id="004-safetensors"),
    # CKPT005 legacy-format
    pytest.param("CKPT005", fixture("legacy.pt"), True, id="005-legacy"),
    pytest.param("CKPT005", built("old.pth.tar", torch_tar(benign_pickle())), True,
                 id="005-torch-tar"),
    pytest.param("CKPT005", fixture("state_dict.pt"), False, id="005-zip"),
    # CKPT006 unreadable
    pytest.param("CKPT006", fixture("lfs_pointer.pt"), True, id="006-lfs-pointer"),
    pytest.param("CKPT006", fixture("not_a_checkpoint.pt"), True, id="006-html"),
    pytest.param("CKPT006", built("t.pt", truncated("state_dict.pt")), True, id="006-truncated"),
    pytest.param("CKPT006", built("t.pt", truncated("legacy.pt")), True,
                 id="006-truncated-legacy"),
    pytest.param("CKPT006", built("e.pt", b""), True, id="006-empty"),
    pytest.param("CKPT006", lambda tmp: tmp / "missing.pt", True, id="006-missing"),
    pytest.param("CKPT006", lambda tmp: tmp, True, id="006-directory"),
    pytest.param("CKPT006", built("a.pt", torch_zip(
        [("a/data.pkl", benign_pickle()), ("b/x", b"")], folder="a")), True,
        id="006-member-outside-folder"),
    pytest.param("CKPT006", built("c.pt", compressed_data_record), True,
                 id="006-compressed-data-record"),
    pytest.param("CKPT006", built("s.pt", torch_zip({"data.pkl": benign_pickle() * 2})), True,
                 id="006-second-pickle-after-stop"),
    pytest.param("CKPT006", fixture("pathconfig.pth"), False, id="006-path-config-text"),
    pytest.param("CKPT006", built("blob.bin", b"\x00\x01firmware"), False, id="006-other-bin"),
    pytest.param("CKPT006", built("notes.txt", b"hello"), False, id="006-not-named-checkpoint"),
    pytest.param("CKPT006", fixture("state_dict.pt"), False, id="006-state-dict"),
    # CKPT007 extension-mismatch
    pytest.param("CKPT007", renamed("model.safetensors", "m.pt"), True, id="007-safetensors-as-pt"),
    pytest.param("CKPT007", renamed("state_dict.pt", "m.safetensors"), True,
                 id="007-zip-as-safetensors"),
    pytest.param("CKPT007", built("m.safetensors", legacy_stream(benign_pickle())), True,
                 id="007-legacy-as-safetensors"),
    pytest.param("CKPT007", built("m.pth.tar", plain_tar), True, id="007-real-tar"),
    pytest.param("CKPT007", built("m.pt", benign_pickle()), True, id="007-plain-pickle-as-pt"),
    pytest.param("CKPT007", fixture("model.safetensors"), False, id="007-safetensors"),
    pytest.param("CKPT007", fixture("checkpoint.pth.tar"), False, id="007-pth-tar-zip"),
    pytest.param("CKPT007", fixture("state_dict.pwf"), False, id="007-pwf"),
    pytest.param("CKPT007", built("m.pkl", benign_pickle()), False, id="007-pickle-as-pkl"),
    # CKPT008 device-tensors
    pytest.param("CKPT008", fixture("device_cuda.pt"), True, id="008-cuda"),
    pytest.param("CKPT008", fixture("state_dict.pt"), False, id="008-cpu"),
]


@pytest.mark.parametrize(("code", "make", "expected"), CASES)
def test_rule(code: str, make: Callable[[Path], Path], expected: bool, tmp_path: Path) -> None:
    findings = lint_file(str(make(tmp_path)), ALL_RULES)
    assert any(f.code == code for f in findings) == expected, findings


def test_device_tensors_is_off_by_default() -> None:
    assert not RULES["CKPT008"].default
    assert lint_file(str(FIXTURES / "device_cuda.pt")) == []


def test_pth_with_import_line_is_an_error_at_that_offset(tmp_path: Path) -> None:
    path = tmp_path / "m.pth"
    data = with_import_line("\nimport os; os.system('true')\n")
    path.write_bytes(data)
    [finding] = [f for f in lint_file(str(path)) if f.code == "CKPT001"]
    assert finding.severity is Severity.ERROR
    assert finding.offset == data.index(b"\nimport ") + 1
    assert "`ckpt lint --fix`" in finding.message and "`ckpt convert --to pt`" in finding.message


@pytest.mark.parametrize(("data", "offset"), [
    pytest.param(b"import x", 0, id="first-line"),
    pytest.param(b"\xef\xbb\xbfimport\tx", 0, id="after-bom"),
    pytest.param(b"abc\rimport x", 4, id="after-cr"),
    pytest.param(b"abc\x0cimport x", 4, id="after-form-feed"),
    pytest.param(b"abc\nimportant", None, id="no-space"),
    pytest.param(b"abc import x", None, id="not-line-start"),
    pytest.param(b"abc\nimport", None, id="at-end"),
])
def test_find_import_line(data: bytes, offset: int | None, tmp_path: Path) -> None:
    path = tmp_path / "x.pth"
    path.write_bytes(data)
    assert find_import_line(str(path)) == offset


def test_find_import_line_across_chunks(tmp_path: Path) -> None:
    from ckpt_tool.lint import rules_file

    for at in range(rules_file._CHUNK - 9, rules_file._CHUNK + 2):
        data = bytearray(b"x" * (rules_file._CHUNK + 16))
        data[at : at + 8] = b"\nimport "
        path = tmp_path / "x.pth"
        path.write_bytes(bytes(data))
        assert find_import_line(str(path)) == at + 1, at


def test_weights_only_message_shows_the_add_safe_globals_line() -> None:
    [finding] = [f for f in lint_file(str(FIXTURES / "whole_model.pt")) if f.code == "CKPT004"]
    assert ("`torch.serialization.add_safe_globals([torch.nn.modules.container.Sequential, "
            "torch.nn.modules.linear.Linear, torch.nn.modules.activation.ReLU])`"
            in finding.message)
    assert "ckpt convert --to safetensors" in finding.message


def test_weights_only_message_never_allow_lists_code() -> None:
    [finding] = [f for f in lint_file(str(FIXTURES / "malicious.pt")) if f.code == "CKPT004"]
    assert "add_safe_globals" not in finding.message
    assert "Never allow-list builtins.exec" in finding.message


def test_weights_only_message_offers_only_reviewed_globals() -> None:
    """A custom class is never in the add_safe_globals line; reviewed torch.nn classes are."""
    [finding] = [f for f in lint_file(str(FIXTURES / "custom_model.pt")) if f.code == "CKPT004"]
    assert "add_safe_globals([torch.nn.modules.linear.Linear])" in finding.message
    assert "fixture_models.TinyNet: code from outside torch" in finding.message


@pytest.mark.parametrize(("module", "name"), [
    ("torch.utils.benchmark.utils.timer", "Timer"),   # known to run code
    ("torch.utils.hooks", "RemovableHandle"),         # an upper-case torch name, not reviewed
    ("numpy.lib.npyio", "DataSource"),
])
def test_weights_only_message_never_offers_unreviewed_library_classes(
        module: str, name: str, tmp_path: Path) -> None:
    data = proto(2) + glob(module, name) + EMPTY_TUPLE + NEWOBJ + STOP
    path = tmp_path / "m.pt"
    path.write_bytes(torch_zip({"data.pkl": data}))
    findings = lint_file(str(path))
    [weights_only] = [f for f in findings if f.code == "CKPT004"]
    assert "add_safe_globals" not in weights_only.message
    assert f"Never allow-list {module}.{name}" in weights_only.message
    assert any(f.code == "CKPT002" and f"`{module}.{name}`" in f.message for f in findings)


def test_custom_class_lists_the_classes() -> None:
    [finding] = [f for f in lint_file(str(FIXTURES / "custom_model.pt")) if f.code == "CKPT003"]
    assert "fixture_models.TinyNet" in finding.message
    assert finding.member == "custom_model/data.pkl"


def test_allowed_globals_silence_custom_and_weights_only() -> None:
    allowed = AllowedGlobals.parse(["fixture_models.TinyNet", "torch.nn.modules.linear.*"])
    config = LintConfig(allowed_globals=allowed)
    assert lint_file(str(FIXTURES / "custom_model.pt"), config) == []


def test_module_wildcard_does_not_cover_an_attribute_path() -> None:
    allowed = AllowedGlobals.parse(["torch.*"])
    assert allowed.allows("torch", "Size")
    assert not allowed.allows("torch", "serialization.os.system")


def test_ambiguous_archive_names_the_member(tmp_path: Path) -> None:
    path = tmp_path / "a.pt"
    path.write_bytes(torch_zip([("a/data.pkl", benign_pickle()), ("b/x", b"")], folder="a"))
    [finding] = [f for f in lint_file(str(path)) if f.code == "CKPT006"]
    assert finding.member == "b/x" and "ambiguous archive" in finding.message


def test_names_that_differ_only_in_case_are_ambiguous(tmp_path: Path) -> None:
    """torch's zip reader (miniz) looks records up without case: it may load Data.pkl where ckpt
    reads data.pkl (torch 2.13 does here), so the two would see different objects."""
    path = tmp_path / "a.pt"
    path.write_bytes(torch_zip([("archive/data.pkl", benign_pickle()),
                                ("archive/Data.pkl", pickle.dumps({"other": 1}, 2))]))
    findings = [f for f in lint_file(str(path)) if f.code == "CKPT006"]
    assert any("ambiguous archive" in f.message and "Data.pkl" in f.message for f in findings)


def test_unreadable_file_is_a_finding_not_an_exception(tmp_path: Path) -> None:
    path = tmp_path / "m.pt"
    path.write_bytes(b"PK\x03\x04" + b"\x00" * 100)
    [finding] = lint_file(str(path))
    assert finding.code == "CKPT006" and finding.severity is Severity.ERROR
