"""Would ``torch.load(weights_only=True)`` accept this file? Judged from the pickle alone.

Mirrors ``torch/_weights_only_unpickler.py``: only the globals of its allow-list (the data file
beside ``safety.py``) and only the opcodes its ``Unpickler.load`` implements.
"""

from __future__ import annotations

from ckpt_tool.model.checkpoint import Checkpoint, Format, Safety, WeightsOnlyVerdict
from ckpt_tool.pickles.safety import TORCH_WEIGHTS_ONLY_OPCODES

_OTHER_LOADERS = {
    Format.SAFETENSORS: "safetensors files are not read by torch.load",
    Format.DCP: "a DCP checkpoint is read by torch.distributed.checkpoint, not torch.load",
    Format.TORCH_EXPORT: "a .pt2 archive is read by torch.export.load, not torch.load",
    Format.TORCH_PACKAGE: "a torch.package archive is read by PackageImporter, not torch.load",
}


def judge_weights_only(checkpoint: Checkpoint) -> WeightsOnlyVerdict:
    if checkpoint.format in _OTHER_LOADERS:
        return WeightsOnlyVerdict(None, (_OTHER_LOADERS[checkpoint.format],))
    if checkpoint.format is Format.TORCHSCRIPT:
        return WeightsOnlyVerdict(False, ("a TorchScript archive: torch.load refuses weights_only"
                                          " and hands it to torch.jit.load",))
    reasons: list[str] = []
    blocking = [g.full_name for g in checkpoint.globals if g.safety is not Safety.WEIGHTS_ONLY]
    if blocking:
        reasons.append("globals not on torch's allow-list: " + ", ".join(blocking))
    opcodes = set().union(*(record.scan.opcodes for record in checkpoint.pickles))
    unsupported = sorted(opcodes - TORCH_WEIGHTS_ONLY_OPCODES)
    if unsupported:
        reasons.append("pickle opcodes its unpickler does not implement: " + ", ".join(unsupported))
    return WeightsOnlyVerdict(not reasons, tuple(reasons), tuple(blocking))
