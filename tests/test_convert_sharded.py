"""One model out of a checkpoint saved in several files (issue 16), against each stack's own
consolidation, bit for bit: a DCP folder against ``dcp_to_torch_save``, per-rank DTensor files
against the full tensors rank 0 gathered, a DeepSpeed ZeRO folder against its own
``zero_to_fp32.py`` output, HF shards against the shards themselves and ``from_pretrained``.
Then what every source shares: ``inspect`` shows the merged model, ``diff`` finds it equal to the
output, URLs give the local bytes, a failure leaves nothing, memory stays flat."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from ckpt_tool.cli import app
from tests.conftest import FIXTURES
from tests.convert_helpers import load_sharded, metadata_of, same_bits
from tests.http_server import serve

CONTAINERS = FIXTURES / "containers"
DISTRIBUTED = FIXTURES / "distributed"
DEEPSPEED = FIXTURES / "producers" / "deepspeed"
ZERO_RUNS = sorted(p.name for p in DEEPSPEED.iterdir() if (p / "consolidated").is_dir())
GPT2_BIN = FIXTURES / "producers" / "transformers4" / "gpt2-bin-sharded"
GPT2_SAFETENSORS = FIXTURES / "producers" / "transformers" / "gpt2-safetensors-sharded"
runner = CliRunner()


def ckpt(*args: Any) -> Any:
    result = runner.invoke(app, [str(arg) for arg in args])
    assert result.exit_code == 0, result.output
    return result


def convert(source: Any, out: Path, *extra: str) -> dict[str, torch.Tensor]:
    """Convert with every tensor under its own name; the output's tensors."""
    ckpt("convert", source, "--to", "safetensors", "-o", out, "--all", "--include-optimizer",
         "--copy-shared", "--quiet", *extra)
    return load_file(str(out))


def flatten(value: Any, prefix: str = "") -> dict[str, torch.Tensor]:
    """Tensors of a nested state by dotted name, as convert names them."""
    if isinstance(value, torch.Tensor):
        return {prefix[:-1]: value}
    items = value.items() if isinstance(value, dict) else enumerate(value) \
        if isinstance(value, list | tuple) else ()
    found: dict[str, torch.Tensor] = {}
    for key, item in items:
        found.update(flatten(item, f"{prefix}{key}."))
    return found


def assert_bit_equal(ours: dict[str, torch.Tensor], theirs: dict[str, torch.Tensor]) -> None:
    assert sorted(ours) == sorted(theirs)
    differ = [name for name in theirs if not same_bits(ours[name], theirs[name])]
    assert differ == []


# ---- DCP: against dcp_to_torch_save ---------------------------------------------------------


def dcp_to_torch_save(folder: Path, tmp_path: Path) -> dict[str, Any]:
    from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

    target = tmp_path / "torch_save.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dcp_to_torch_save(str(folder), str(target))
    return torch.load(target, weights_only=False)


@pytest.mark.parametrize("folder", ["dcp_single", "dcp_2ranks"])
def test_dcp_folder_converts_to_what_dcp_to_torch_save_gives(folder: str, tmp_path: Path) -> None:
    """dcp_single keeps a transposed chunk and a list; dcp_2ranks has chunks along dim 0, along
    dim 1 (assembled through the bounded buffer), uneven ones and a replicated tensor."""
    theirs = flatten(dcp_to_torch_save(CONTAINERS / folder, tmp_path))
    assert_bit_equal(convert(CONTAINERS / folder, tmp_path / "out.safetensors"), theirs)


def test_dcp_scalars_become_metadata(tmp_path: Path) -> None:
    convert(CONTAINERS / "dcp_single", tmp_path / "out.safetensors")
    metadata = metadata_of(tmp_path / "out.safetensors")
    assert (metadata["epoch"], metadata["best_loss"], metadata["run"]) == ("3", "0.125",
                                                                          "fixture")


def test_dcp_of_safetensors_shards_equals_the_pickled_flavour(tmp_path: Path) -> None:
    """The same DTensors saved through HuggingFaceStorageWriter: the same model out."""
    theirs = flatten(dcp_to_torch_save(CONTAINERS / "dcp_2ranks", tmp_path)["model"])
    assert_bit_equal(convert(CONTAINERS / "dcp_safetensors", tmp_path / "out.safetensors"),
                     theirs)


# ---- per-rank DTensor files: against full_tensor() ------------------------------------------


def test_dtensor_ranks_merge_to_the_full_tensors_rank0_gathered(tmp_path: Path) -> None:
    """A 2x2 mesh: sharded on both mesh dimensions, twice on one tensor dimension, unevenly
    (empty parts), replicated, bf16, a transposed part; a plain tensor and values beside."""
    full = torch.load(DISTRIBUTED / "dtensor_2d_full.pt", weights_only=False)
    assert_bit_equal(convert(DISTRIBUTED / "dtensor_2d", tmp_path / "out.safetensors"),
                     flatten(full))
    assert metadata_of(tmp_path / "out.safetensors")["step"] == "7"


def test_fsdp2_rank_files_merge_to_the_module_they_shard(tmp_path: Path) -> None:
    """fixtures/formats/dtensor_2ranks: FSDP2 over two ranks, each holding half of each
    parameter; the module they sharded is rebuilt here from its seed."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    theirs = {**model.state_dict(), "replicated": torch.arange(4.0)}
    ours = convert(FIXTURES / "formats" / "dtensor_2ranks", tmp_path / "out.safetensors")
    assert_bit_equal(ours, theirs)


def test_partial_dtensor_is_refused_and_the_rest_converts(tmp_path: Path) -> None:
    out = tmp_path / "out.safetensors"
    args = ["convert", str(DISTRIBUTED / "dtensor_partial"), "--to", "safetensors", "-o",
            str(out)]
    refused = runner.invoke(app, args)
    assert refused.exit_code == 2
    assert "Partial(reduce_op=sum) placement" in refused.output and "Traceback" not in \
        refused.output
    assert list(tmp_path.iterdir()) == []
    ckpt(*args, "--skip-unsupported")
    assert sorted(load_file(str(out))) == ["w"]


def test_one_rank_file_alone_points_at_the_folder(tmp_path: Path) -> None:
    result = runner.invoke(app, ["convert", str(DISTRIBUTED / "dtensor_2d" / "rank1.pt"),
                                 "--to", "safetensors", "-o", str(tmp_path / "out.safetensors")])
    assert result.exit_code == 2
    assert "convert the folder holding every rank's file" in result.output


def test_a_missing_rank_file_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "ranks"
    shutil.copytree(DISTRIBUTED / "dtensor_2d", folder)
    (folder / "rank3.pt").unlink()
    result = runner.invoke(app, ["convert", str(folder), "--to", "safetensors", "-o",
                                 str(tmp_path / "out.safetensors"), "--all"])
    assert result.exit_code == 2
    assert "the checkpoint is incomplete" in result.output
    assert not (tmp_path / "out.safetensors").exists()


# ---- DeepSpeed ZeRO: against its zero_to_fp32.py ---------------------------------------------


@pytest.mark.parametrize("run", ZERO_RUNS)
def test_zero_folder_equals_what_its_zero_to_fp32_wrote(run: str, tmp_path: Path) -> None:
    theirs = torch.load(DEEPSPEED / run / "consolidated" / "pytorch_model.bin", weights_only=True)
    ours = convert(DEEPSPEED / run / "checkpoint", tmp_path / "out.safetensors")
    assert_bit_equal(ours, theirs)


def test_zero_tag_folder_converts_with_a_cast(tmp_path: Path) -> None:
    """The tag folder itself, cast on the way: zero_to_fp32's ``.to(dtype)`` of its output."""
    run = DEEPSPEED / "zero3-world2"
    theirs = torch.load(run / "consolidated" / "pytorch_model.bin", weights_only=True)
    ours = convert(run / "checkpoint" / "global_step1", tmp_path / "out.safetensors",
                   "--dtype", "bf16")
    assert_bit_equal(ours, {name: t.to(torch.bfloat16) if t.is_floating_point() else t
                            for name, t in theirs.items()})


def test_zero_folder_missing_a_rank_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "checkpoint"
    shutil.copytree(DEEPSPEED / "zero2-world2" / "checkpoint", folder)
    (folder / "global_step1" / "zero_pp_rank_1_mp_rank_00_optim_states.pt").unlink()
    result = runner.invoke(app, ["convert", str(folder), "--to", "safetensors", "-o",
                                 str(tmp_path / "out.safetensors")])
    assert result.exit_code == 2
    assert "expected 2 *_optim_states.pt files" in result.output


# ---- HF shards: one model, transformers' names ------------------------------------------------


def source_tensors(folder: Path) -> dict[str, torch.Tensor]:
    tensors: dict[str, torch.Tensor] = {}
    for shard in sorted(folder.glob("pytorch_model-*.bin")):
        tensors.update(torch.load(shard, weights_only=True))
    return tensors


def test_bin_shards_become_the_safetensors_shards_transformers_writes(tmp_path: Path) -> None:
    """transformers 4's ``.bin`` shards of a GPT-2 re-sharded at 20KB give the index transformers
    5's ``save_pretrained(max_shard_size="20KB")`` wrote for the same model, and its tensors."""
    ckpt("convert", GPT2_BIN / "pytorch_model.bin.index.json", "--to", "safetensors", "-o",
         tmp_path / "model.safetensors", "--shard-size", "20KB", "--quiet")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
        "model.safetensors.index.json"]
    index = tmp_path / "model.safetensors.index.json"
    assert index.read_text() == (GPT2_SAFETENSORS / "model.safetensors.index.json").read_text()
    theirs = load_sharded(GPT2_SAFETENSORS / "model.safetensors.index.json")
    assert_bit_equal(load_sharded(index), theirs)


def test_from_pretrained_loads_the_converted_folder(tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    ckpt("convert", GPT2_BIN, "--to", "safetensors", "-o", tmp_path, "--shard-size", "10KB",
         "--quiet")
    shutil.copy(GPT2_BIN / "config.json", tmp_path)
    model = transformers.AutoModelForCausalLM.from_pretrained(str(tmp_path))
    loaded, expected = model.state_dict(), source_tensors(GPT2_BIN)
    assert sorted(loaded) == sorted(expected)
    assert all(torch.equal(loaded[name], tensor) for name, tensor in expected.items())
    assert model.lm_head.weight.data_ptr() == model.transformer.wte.weight.data_ptr()


def test_shard_size_reshards_across_the_source_files(tmp_path: Path) -> None:
    ckpt("convert", GPT2_BIN, "--to", "safetensors", "-o", tmp_path, "--shard-size", "6KB",
         "--quiet")
    document = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    shards = sorted(p for p in tmp_path.glob("model-*.safetensors"))
    count = len(shards)
    assert count > 4 and [p.name for p in shards] == [
        f"model-{i:05d}-of-{count:05d}.safetensors" for i in range(1, count + 1)]
    expected = source_tensors(GPT2_BIN)
    del expected["lm_head.weight"]  # tied to transformer.wte.weight: recorded, not written
    assert set(document["weight_map"]) == set(expected)
    assert document["metadata"]["total_size"] == sum(t.nbytes for t in expected.values())
    for shard in shards:
        sizes = [t.nbytes for t in load_file(str(shard)).values()]
        assert sum(sizes) <= 6000 or len(sizes) == 1
    assert_bit_equal(load_sharded(tmp_path / "model.safetensors.index.json"), expected)


def test_without_o_the_model_is_written_beside_its_index(tmp_path: Path) -> None:
    folder = tmp_path / "gpt2"
    shutil.copytree(GPT2_BIN, folder)
    ckpt("convert", folder / "pytorch_model.bin.index.json", "--to", "safetensors", "--quiet")
    assert (folder / "model.safetensors").is_file()
    ckpt("convert", DEEPSPEED / "zero1-world1" / "checkpoint", "--to", "safetensors", "-o",
         tmp_path / "zero", "--quiet")  # a folder that does not exist yet: a file name
    assert (tmp_path / "zero").is_file()


# ---- what every source shares -----------------------------------------------------------------

SOURCES = {
    "dcp": CONTAINERS / "dcp_2ranks",
    "dtensor": DISTRIBUTED / "dtensor_2d",
    "zero": DEEPSPEED / "zero3-world2" / "checkpoint",
    "hf": GPT2_BIN,
}
REFERENCES = {
    "dtensor": lambda tmp: flatten(torch.load(DISTRIBUTED / "dtensor_2d_full.pt",
                                              weights_only=False)),
    "zero": lambda tmp: torch.load(DEEPSPEED / "zero3-world2" / "consolidated" /
                                   "pytorch_model.bin", weights_only=True),
    "hf": lambda tmp: source_tensors(GPT2_BIN),
    "dcp": lambda tmp: flatten(dcp_to_torch_save(CONTAINERS / "dcp_2ranks", tmp)),
}


@pytest.mark.parametrize("kind", sorted(SOURCES))
def test_inspect_shows_the_merged_model(kind: str, tmp_path: Path) -> None:
    document = json.loads(ckpt("inspect", SOURCES[kind], "--json").stdout)
    (model,) = document["files"]
    ours = {t["name"]: (t["dtype"], t["shape"]) for t in model["tensors"]}
    reference = REFERENCES[kind](tmp_path)
    assert ours == {name: (str(t.dtype).removeprefix("torch."), list(t.shape))
                    for name, t in reference.items()}
    unique = {t.untyped_storage().data_ptr(): t.numel() for t in reference.values()}
    assert model["element_count"] == sum(unique.values())
    assert len(model["files"]) > 1


@pytest.mark.parametrize("kind", sorted(SOURCES))
def test_diff_finds_the_source_equal_to_its_output(kind: str, tmp_path: Path) -> None:
    out = tmp_path / "out.safetensors"
    ckpt("convert", SOURCES[kind], "--to", "safetensors", "-o", out, "--all",
         "--include-optimizer", "--quiet")
    result = runner.invoke(app, ["diff", str(SOURCES[kind]), str(out), "--values", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["equal"] is True


REMOTE = ["containers/dcp_2ranks/", "distributed/dtensor_2d/",
          "producers/deepspeed/zero2-world2-bf16/checkpoint/",
          "producers/transformers4/gpt2-bin-sharded/pytorch_model.bin.index.json"]


@pytest.mark.parametrize("relative", REMOTE)
def test_a_url_converts_to_the_local_bytes(relative: str, tmp_path: Path) -> None:
    """Folders through fsspec (``file://``, listed), and through HTTP ranges where the names are
    known (a DTensor folder cannot be listed over HTTP)."""
    local = tmp_path / "local.safetensors"
    ckpt("convert", FIXTURES / relative, "--to", "safetensors", "-o", local, "--quiet")
    urls = [f"file://{FIXTURES / relative}" + ("/" if relative.endswith("/") else "")]
    with serve(FIXTURES) as server:
        if "dtensor" not in relative:
            urls.append(f"{server.url}/{relative}")
        for number, url in enumerate(urls):
            remote = tmp_path / f"remote{number}.safetensors"
            ckpt("convert", url, "--to", "safetensors", "-o", remote, "--quiet")
            assert remote.read_bytes() == local.read_bytes(), url


def test_an_http_folder_of_rank_files_says_why_it_cannot_be_read(tmp_path: Path) -> None:
    with serve(FIXTURES) as server:
        result = runner.invoke(app, ["convert", f"{server.url}/distributed/dtensor_2d/", "--to",
                                     "safetensors", "-o", str(tmp_path / "out.safetensors")])
    assert result.exit_code == 2
    assert "an HTTP folder cannot be listed" in result.output


def test_a_failure_in_a_later_shard_leaves_nothing(tmp_path: Path, monkeypatch) -> None:
    from ckpt_tool.convert import to_safetensors
    from ckpt_tool.convert.core import convert_file
    from ckpt_tool.convert.options import ConvertOptions
    from ckpt_tool.errors import ConversionError

    real, calls = to_safetensors.verify_safetensors, []

    def second_fails(*args: Any, **kwargs: Any) -> None:
        calls.append(1)
        if len(calls) == 2:
            raise ConversionError("verification failed: (injected)")
        real(*args, **kwargs)

    monkeypatch.setattr(to_safetensors, "verify_safetensors", second_fails)
    result = convert_file(str(GPT2_BIN), str(tmp_path / "model.safetensors"),
                          ConvertOptions(shard_size=10_000))
    assert result.error == "verification failed: (injected)"
    assert os.listdir(tmp_path) == []


# ---- the writer -----------------------------------------------------------------------------


def test_one_file_is_byte_for_byte_what_safetensors_writes(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    source = tmp_path / "model.pt"
    torch.manual_seed(0)
    state = {"b.weight": torch.randn(3, 5), "a.bias": torch.randn(7).half(),
             "ids": torch.arange(6), "mask": torch.ones(2, dtype=torch.bool),
             "z": torch.randn(2, 2, dtype=torch.float64), "c": torch.randn(4).bfloat16()}
    torch.save(state, source)
    ckpt("convert", source, "--to", "safetensors", "-o", tmp_path / "ours.safetensors",
         "--quiet")
    save_file(state, str(tmp_path / "theirs.safetensors"), metadata={"format": "pt"})
    assert (tmp_path / "ours.safetensors").read_bytes() == \
        (tmp_path / "theirs.safetensors").read_bytes()


def test_every_safetensors_dtype_has_its_place_in_the_data_order() -> None:
    from ckpt_tool.convert.safetensors_layout import DTYPE_ORDER
    from ckpt_tool.model.dtypes import DTYPES

    assert {d.safetensors for d in DTYPES if d.safetensors} == set(DTYPE_ORDER)


# ---- memory ---------------------------------------------------------------------------------

MEMORY_LIMIT = 200 << 20
"""Peak anonymous memory allowed for converting a model several times this test's ~400 MB."""


@pytest.fixture(scope="module")
def big_dcp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A DCP folder of ~400 MB written by dcp.save (one process: whole tensors, one file)."""
    import torch.distributed.checkpoint as dcp

    folder = tmp_path_factory.mktemp("big") / "dcp"
    state = {f"layers.{i}.weight": torch.full((4096, 3072), float(i)) for i in range(8)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dcp.save(state, checkpoint_id=str(folder))
    return folder


def peak_anonymous_memory(command: list[str]) -> int:
    """Run ``command``; sample its ``RssAnon`` every 5 ms (the kernel keeps no peak of it)."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak, status = 0, Path(f"/proc/{process.pid}/status")

    def sample() -> None:
        nonlocal peak
        while process.poll() is None:
            try:
                text = status.read_text()
            except OSError:
                return
            for line in text.splitlines():
                if line.startswith("RssAnon:"):
                    peak = max(peak, int(line.split()[1]) * 1024)
            time.sleep(0.005)

    thread = threading.Thread(target=sample)
    thread.start()
    _, stderr = process.communicate(timeout=300)
    thread.join()
    assert process.returncode == 0, stderr
    return peak


@pytest.mark.parametrize("extra", [[], ["--dtype", "bf16"]], ids=["copy", "cast"])
def test_memory_stays_flat(big_dcp: Path, tmp_path: Path, extra: list[str]) -> None:
    """Byte ranges copied by the kernel, or every block cast through the bounded buffer: the
    peak stays a small part of the 400 MB model, and the output is verified."""
    out = tmp_path / "out.safetensors"
    peak = peak_anonymous_memory([sys.executable, "-m", "ckpt_tool", "convert", str(big_dcp),
                                  "--to", "safetensors", "-o", str(out), "--quiet", *extra])
    assert 0 < peak < MEMORY_LIMIT, peak
    assert out.stat().st_size > 190 << 20
