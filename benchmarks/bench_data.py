"""Generate the benchmark's checkpoints at run time (never committed).

Every file is made with the real ``torch.save``. Tensor values are a short deterministic
pattern tiled over each tensor (no RNG over gigabytes), so a 2 GB file takes seconds. A file's
name carries its size parameters and ``GENERATOR_VERSION``; an existing file is reused, and
files are written under ``<name>.partial`` and renamed into place, so a name that exists is a
complete file.

Layouts (names, shapes, dtypes) are computed without torch, so the expected tensor counts are
known even when every file is reused; torch is imported only to generate.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache, partial
from pathlib import Path
from typing import Any

GENERATOR_VERSION = 2
MB = 1_000_000
LLM_LAYERS = 32
PATTERN_PERIOD = 65_521  # prime, so rows of a tensor do not repeat in step
ITEM_SIZE = {"float32": 4, "bfloat16": 2, "int64": 8}

Spec = tuple[str, tuple[int, ...], str]  # tensor name, shape, dtype name


@dataclass(frozen=True)
class Sizes:
    """How big each generated data set is."""

    llm_bytes: int
    tiny_bytes: int
    many_tensors: int
    legacy_bytes: int
    training_bytes: int
    lint_files: int
    dcp_bytes: int
    hf_bytes: int
    hf_shard_bytes: int
    scaling_tensors: tuple[int, ...]
    """Tensor counts of the scaling table's small-tensor files (the same count in each mode)."""
    scaling_bytes: tuple[int, ...]
    """Sizes of its LLM state_dicts (291 tensors each)."""


FULL = Sizes(2_000 * MB, 2 * MB, 50_000, 500 * MB, 200 * MB, 1_000, 2_000 * MB, 2_000 * MB,
             500 * MB, (1_000, 10_000, 50_000, 200_000), (100 * MB, 1_000 * MB, 6_000 * MB))
QUICK = Sizes(40 * MB, 2 * MB, 2_000, 10 * MB, 5 * MB, 50, 40 * MB, 40 * MB, 10 * MB,
              (1_000, 2_000, 5_000, 10_000), (5 * MB, 10 * MB, 40 * MB))
SCALING_KEYS = (*(f"scale-t{i}" for i in range(4)), *(f"scale-b{i}" for i in range(3)))
DCP_RANKS = 2


@dataclass(frozen=True)
class Dataset:
    """One generated file (a folder, for the lint corpus) and what it should hold."""

    key: str
    label: str
    path: Path
    tensors: int  # tensors in the file
    weights: int  # tensors `ckpt convert --to safetensors` should write (the weights root)
    make: Callable[[Path], None] = field(compare=False, repr=False)
    files: int = 1

    def size(self) -> int:
        if self.path.is_dir():
            return sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file())
        return self.path.stat().st_size


# ------------------------------------------------------------------------------ layouts


def llm_specs(hidden: int, layers: int = LLM_LAYERS) -> list[Spec]:
    """A Llama-style state_dict in HF names: bf16 projections; fp32 norms, embeddings, head.

    Key/value width is a quarter of the hidden width (grouped-query attention), the MLP 8/3 of
    it, the vocabulary 16 times it: about ``800 * hidden**2`` bytes and 291 tensors.
    """
    kv, inter, vocab = hidden // 4, _round_up(hidden * 8 // 3, 8), hidden * 16
    specs: list[Spec] = [("model.embed_tokens.weight", (vocab, hidden), "float32")]
    for i in range(layers):
        p = f"model.layers.{i}."
        specs += [
            (p + "self_attn.q_proj.weight", (hidden, hidden), "bfloat16"),
            (p + "self_attn.k_proj.weight", (kv, hidden), "bfloat16"),
            (p + "self_attn.v_proj.weight", (kv, hidden), "bfloat16"),
            (p + "self_attn.o_proj.weight", (hidden, hidden), "bfloat16"),
            (p + "mlp.gate_proj.weight", (inter, hidden), "bfloat16"),
            (p + "mlp.up_proj.weight", (inter, hidden), "bfloat16"),
            (p + "mlp.down_proj.weight", (hidden, inter), "bfloat16"),
            (p + "input_layernorm.weight", (hidden,), "float32"),
            (p + "post_attention_layernorm.weight", (hidden,), "float32"),
        ]
    specs.append(("model.norm.weight", (hidden,), "float32"))
    specs.append(("lm_head.weight", (vocab, hidden), "float32"))
    return specs


def llm_hidden_for(target_bytes: int) -> int:
    """The hidden width, a multiple of 8, whose LLM layout's size is closest to the target."""
    candidates = range(8, 8 * 1024, 8)
    return min(candidates, key=lambda h: abs(specs_bytes(llm_specs(h)) - target_bytes))


def many_specs(count: int) -> list[Spec]:
    """``count`` tiny tensors (4 to 8 elements, fp32 and bf16), each with its own storage."""
    params = (
        "ln.weight",
        "ln.bias",
        "attn.scale",
        "attn.bias",
        "mlp.bias",
        "gate",
        "alpha",
        "beta",
    )
    shapes: tuple[tuple[int, ...], ...] = ((4,), (2, 3), (8,))
    return [
        (
            f"encoder.blocks.{i // len(params)}.{params[i % len(params)]}",
            shapes[i % len(shapes)],
            "bfloat16" if i % 2 else "float32",
        )
        for i in range(count)
    ]


RESNET50_STAGES = ((64, 3), (128, 4), (256, 6), (512, 3))  # (planes, blocks); expansion 4


def resnet_specs(width: float) -> tuple[list[Spec], list[Spec]]:
    """torchvision ResNet-50's state_dict at a width multiplier, in state_dict order:
    (every entry, the parameters only; the rest are BatchNorm buffers)."""
    entries: list[tuple[Spec, bool]] = []  # (spec, is a parameter)

    def channels(base: int) -> int:
        return max(4, round(base * width / 4) * 4)

    def conv(name: str, out: int, inp: int, k: int) -> None:
        entries.append(((f"{name}.weight", (out, inp, k, k), "float32"), True))

    def bn(name: str, c: int) -> None:
        entries.extend(((f"{name}.{s}", (c,), "float32"), True) for s in ("weight", "bias"))
        entries.extend(
            ((f"{name}.{s}", (c,), "float32"), False) for s in ("running_mean", "running_var")
        )
        entries.append(((f"{name}.num_batches_tracked", (), "int64"), False))

    inplanes = channels(64)
    conv("conv1", inplanes, 3, 7)
    bn("bn1", inplanes)
    for stage, (base, blocks) in enumerate(RESNET50_STAGES, start=1):
        planes = channels(base)
        for b in range(blocks):
            p = f"layer{stage}.{b}."
            conv(p + "conv1", planes, inplanes, 1)
            bn(p + "bn1", planes)
            conv(p + "conv2", planes, planes, 3)
            bn(p + "bn2", planes)
            conv(p + "conv3", planes * 4, planes, 1)
            bn(p + "bn3", planes * 4)
            if b == 0:
                conv(p + "downsample.0", planes * 4, inplanes, 1)
                bn(p + "downsample.1", planes * 4)
            inplanes = planes * 4
    entries.append((("fc.weight", (1000, inplanes), "float32"), True))
    entries.append((("fc.bias", (1000,), "float32"), True))
    return [s for s, _ in entries], [s for s, is_param in entries if is_param]


def training_bytes(width: float) -> int:
    """The state_dict plus Adam's exp_avg and exp_avg_sq for every parameter."""
    state, params = resnet_specs(width)
    return specs_bytes(state) + 2 * specs_bytes(params)


def resnet_width_for(target_bytes: int) -> float:
    """The width multiplier, a multiple of 1/64, whose training checkpoint is closest."""
    return min((k / 64 for k in range(1, 257)), key=lambda w: abs(training_bytes(w) - target_bytes))


def specs_bytes(specs: list[Spec]) -> int:
    return sum(math.prod(shape) * ITEM_SIZE[dtype] for _, shape, dtype in specs)


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


# ----------------------------------------------------------------------------- data sets


def plan(data_dir: Path, sizes: Sizes) -> dict[str, Dataset]:
    """Every data set's path, expected contents and maker; nothing is generated here."""
    v = f"v{GENERATOR_VERSION}"
    llm, tiny, legacy = (
        llm_hidden_for(n) for n in (sizes.llm_bytes, sizes.tiny_bytes, sizes.legacy_bytes)
    )
    width = resnet_width_for(sizes.training_bytes)
    state, params = resnet_specs(width)
    n_llm = len(llm_specs(llm))
    n_train = len(state) + 1 + 3 * len(params)  # + best_acc1 + Adam's step, exp_avg, exp_avg_sq
    n_many, n_lint = sizes.many_tensors, sizes.lint_files
    dcp, hf = llm_hidden_for(sizes.dcp_bytes), llm_hidden_for(sizes.hf_bytes)
    sets = [
        Dataset("llm", "LLM state_dict", data_dir / f"llm-h{llm}-{v}.pt", n_llm, n_llm,
                partial(save_specs, llm_specs(llm))),
        Dataset("tiny", "same names, tiny tensors", data_dir / f"llm-h{tiny}-{v}.pt", n_llm, n_llm,
                partial(save_specs, llm_specs(tiny))),
        Dataset("many", f"{n_many:,} small tensors", data_dir / f"many-{n_many}-{v}.pt",
                n_many, n_many, partial(save_specs, many_specs(n_many))),
        Dataset("legacy", "legacy format (pre-1.6)", data_dir / f"legacy-h{legacy}-{v}.pt",
                n_llm, n_llm, partial(save_specs, llm_specs(legacy), legacy=True)),
        Dataset("training", "ImageNet training checkpoint, Adam",
                data_dir / f"resnet-w{round(width * 64)}-{v}.pth.tar", n_train, len(state),
                partial(save_training, width)),
        Dataset("lint", f"{n_lint:,} small checkpoints", data_dir / f"lint-{n_lint}-{v}",
                0, 0, partial(make_lint_corpus, n_lint), files=n_lint),
        Dataset("dcp", f"DCP folder, {DCP_RANKS} ranks (FSDP-style Shard(0))",
                data_dir / f"dcp-h{dcp}-r{DCP_RANKS}-{v}", n_llm, n_llm,
                partial(save_dcp, llm_specs(dcp), DCP_RANKS), files=DCP_RANKS + 1),
        Dataset("hf", "HF .bin shards + index", data_dir / f"hf-h{hf}-s{sizes.hf_shard_bytes}-{v}",
                n_llm, n_llm, partial(save_hf_shards, llm_specs(hf), sizes.hf_shard_bytes),
                files=len(hf_shards(llm_specs(hf), sizes.hf_shard_bytes)) + 1),
        Dataset("hub", f"a {HUB_TENSORS}-tensor model as .bin and .safetensors",
                data_dir / f"hub-{HUB_TENSORS}-{v}", HUB_TENSORS, HUB_TENSORS, make_hub_model,
                files=2),
    ]  # fmt: skip
    for i, count in enumerate(sizes.scaling_tensors):
        sets.append(Dataset(f"scale-t{i}", f"{count:,} small tensors",
                            data_dir / f"many-{count}-{v}.pt", count, count,
                            partial(save_specs, many_specs(count))))
    for i, target in enumerate(sizes.scaling_bytes):
        hidden = llm_hidden_for(target)
        sets.append(Dataset(f"scale-b{i}", "LLM state_dict", data_dir / f"llm-h{hidden}-{v}.pt",
                            n_llm, n_llm, partial(save_specs, llm_specs(hidden))))
    return {d.key: d for d in sets}


def ensure(datasets: list[Dataset], log: Callable[[str], None]) -> None:
    """Generate every data set whose file does not exist yet."""
    for dataset in datasets:
        if dataset.path.exists():
            continue
        log(f"generating {dataset.path.name} ({dataset.label})")
        dataset.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = dataset.path.with_name(dataset.path.name + ".partial")
        _remove(tmp)
        try:
            dataset.make(tmp)
        except BaseException:
            _remove(tmp)
            raise
        os.replace(tmp, dataset.path)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


# ------------------------------------------------------------------------------- writers


def _torch() -> Any:
    import torch

    return torch


@cache
def _doubled_base() -> Any:
    """Two periods of small weight-like values, so any rotation is a plain slice."""
    torch = _torch()
    base = torch.arange(PATTERN_PERIOD, dtype=torch.float32).mul_(0.6180339887).frac_()
    base = base.sub_(0.5).mul_(0.04)
    return torch.cat([base, base])


def pattern(shape: tuple[int, ...], dtype_name: str, seed: int) -> Any:
    """A new tensor with its own storage: the base period, rotated by ``seed``, tiled."""
    torch = _torch()
    dtype = getattr(torch, dtype_name)
    if dtype_name == "int64":
        return torch.full(shape, seed % 1000, dtype=dtype)
    numel = math.prod(shape)
    start = seed % PATTERN_PERIOD
    period = _doubled_base()[start : start + PATTERN_PERIOD]
    flat = period[:numel] if numel <= PATTERN_PERIOD else period.repeat(-(-numel // PATTERN_PERIOD))
    return flat[:numel].reshape(shape).to(dtype, copy=True)


def specs_to_tensors(specs: list[Spec]) -> dict[str, Any]:
    return {name: pattern(shape, dtype, i) for i, (name, shape, dtype) in enumerate(specs)}


def save_specs(specs: list[Spec], path: Path, legacy: bool = False) -> None:
    _torch().save(specs_to_tensors(specs), path, _use_new_zipfile_serialization=not legacy)


def training_checkpoint(width: float) -> dict[str, Any]:
    """What pytorch/examples' ImageNet script saves: epoch, arch, weights, Adam, scheduler."""
    torch = _torch()
    state_specs, param_specs = resnet_specs(width)
    state = specs_to_tensors(state_specs)
    adam = {
        i: {
            "step": torch.tensor(450_450.0),
            "exp_avg": pattern(shape, dtype, i + 1),
            "exp_avg_sq": pattern(shape, dtype, i + 2).abs_(),
        }
        for i, (_, shape, dtype) in enumerate(param_specs)
    }
    group = {
        "lr": 1e-5, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 1e-4, "amsgrad": False,
        "maximize": False, "foreach": None, "capturable": False, "differentiable": False,
        "fused": None, "params": list(range(len(param_specs))),
    }  # fmt: skip
    scheduler = {
        "step_size": 30, "gamma": 0.1, "base_lrs": [0.001], "last_epoch": 90,
        "_step_count": 91, "_get_lr_called_within_step": False, "_last_lr": [1e-6],
    }  # fmt: skip
    return {
        "epoch": 90,
        "arch": "resnet50",
        "state_dict": state,
        "best_acc1": torch.tensor(76.13),
        "optimizer": {"state": adam, "param_groups": [group]},
        "scheduler": scheduler,
    }


def save_training(width: float, path: Path) -> None:
    _torch().save(training_checkpoint(width), path)


# ------------------------------------------------------------------------ sharded models


def hf_shards(specs: list[Spec], shard_bytes: int) -> list[list[Spec]]:
    """Split as huggingface_hub does: in order, a new shard when the next tensor would pass."""
    shards: list[list[Spec]] = [[]]
    size = 0
    for spec in specs:
        nbytes = specs_bytes([spec])
        if shards[-1] and size + nbytes > shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append(spec)
        size += nbytes
    return shards


def save_hf_shards(specs: list[Spec], shard_bytes: int, folder: Path) -> None:
    """``save_pretrained(safe_serialization=False)``'s layout: ``pytorch_model-0000N-of-0000M.bin``
    and ``pytorch_model.bin.index.json``."""
    import json

    folder.mkdir(parents=True)
    shards = hf_shards(specs, shard_bytes)
    weight_map, seed = {}, 0
    for number, shard in enumerate(shards, start=1):
        name = f"pytorch_model-{number:05d}-of-{len(shards):05d}.bin"
        tensors = {}
        for spec_name, shape, dtype in shard:
            tensors[spec_name] = pattern(shape, dtype, seed)
            weight_map[spec_name] = name
            seed += 1
        _torch().save(tensors, folder / name)
    index = {"metadata": {"total_size": specs_bytes(specs)}, "weight_map": weight_map}
    text = json.dumps(index, indent=2, sort_keys=True) + "\n"
    (folder / "pytorch_model.bin.index.json").write_text(text)


def save_dcp(specs: list[Spec], ranks: int, folder: Path) -> None:
    """``dcp.save`` from ``ranks`` processes of a gloo group, as FSDP2 saves: every matrix
    ``Shard(0)`` (each rank its rows, one data file per rank), vectors replicated."""
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    mp.start_processes(_dcp_rank, args=(specs, str(folder), ranks, port), nprocs=ranks,
                       start_method="spawn")


def _dcp_rank(rank: int, specs: list[Spec], folder: str, ranks: int, port: int) -> None:
    import warnings

    import torch.distributed as dist
    import torch.distributed.checkpoint as dcp
    from torch.distributed.tensor import DTensor, Replicate, Shard, init_device_mesh

    torch = _torch()
    warnings.simplefilter("ignore")
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=ranks)
    try:
        mesh = init_device_mesh("cpu", (ranks,))
        state = {}
        for i, (name, shape, dtype) in enumerate(specs):
            if len(shape) == 2 and shape[0] % ranks == 0:
                rows = shape[0] // ranks
                local = pattern((rows, shape[1]), dtype, i * ranks + rank)
                state[name] = DTensor.from_local(local, mesh, [Shard(0)], run_check=False,
                                                 shape=torch.Size(shape),
                                                 stride=(shape[1], 1))
            else:
                state[name] = DTensor.from_local(pattern(shape, dtype, i), mesh, [Replicate()],
                                                 run_check=False)
        dcp.save(state, checkpoint_id=folder)
    finally:
        dist.destroy_process_group()
# ------------------------------------------------------------------------ hub-style model

HUB_TENSORS = 169
"""A 169-tensor pytorch_model.bin (issue 14: 174 requests over HTTP before), 64×64 float32."""


def make_hub_model(folder: Path) -> None:
    from safetensors.torch import save_file

    folder.mkdir(parents=True)
    state = {f"h.{i}.w": pattern((64, 64), "float32", i) for i in range(HUB_TENSORS)}
    _torch().save(state, folder / "pytorch_model.bin")
    save_file(state, str(folder / "model.safetensors"))


# --------------------------------------------------------------------------- lint corpus


def lint_kinds(count: int) -> Iterator[tuple[str, str]]:
    """(file name, kind) of each corpus file: mostly state_dicts under the usual extensions
    (all of them ones picklescan scans), some training checkpoints, and 2% each of
    legacy-format files and whole-model pickles made of torch.nn classes."""
    for i in range(count):
        if i % 50 == 7:
            yield f"model_{i:04d}.pt", "whole-model"
        elif i % 50 == 21:
            yield f"legacy_{i:04d}.pt", "legacy"
        elif i % 10 == 3:
            yield f"train_{i:04d}.ckpt", "training"
        elif i % 10 == 5:
            yield f"pytorch_model_{i:04d}.bin", "state_dict"
        elif i % 50 == 11:
            yield f"weights_{i:04d}.pth", "state_dict"
        else:
            yield f"sd_{i:04d}.pt", "state_dict"


def small_state_dict(i: int) -> dict[str, Any]:
    """2 to 12 Linear(16, 16) layers: about 2 to 13 KB of tensors."""
    state: dict[str, Any] = {}
    for k in range(2 + i % 11):
        state[f"layers.{k}.weight"] = pattern((16, 16), "float32", i + k)
        state[f"layers.{k}.bias"] = pattern((16,), "float32", i + k + 1)
    return state


def make_lint_file(kind: str, i: int, path: Path) -> None:
    torch = _torch()
    obj: Any
    if kind == "whole-model":
        torch.manual_seed(i)
        nn = torch.nn
        obj = nn.Sequential(nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 4))
    elif kind == "training":
        weights = small_state_dict(i)
        momentum = {n: {"momentum_buffer": t.clone()} for n, t in enumerate(weights.values())}
        obj = {"epoch": i % 90, "state_dict": weights, "optimizer": {"state": momentum}}
    else:
        obj = small_state_dict(i)
    torch.save(obj, path, _use_new_zipfile_serialization=kind != "legacy")


def make_lint_corpus(count: int, folder: Path) -> None:
    folder.mkdir(parents=True)
    for i, (name, kind) in enumerate(lint_kinds(count)):
        make_lint_file(kind, i, folder / name)


def lint_sample(corpus: Dataset) -> Path:
    """One small plain state_dict of the corpus, for the start-up measurement."""
    return corpus.path / next(
        name for name, kind in lint_kinds(corpus.files) if kind == "state_dict"
    )
