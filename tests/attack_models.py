"""TorchScript modules for the attack tests (scripting needs their source in a file). Each payload
only writes ``ckpt_canary.txt`` in the current directory."""

from __future__ import annotations

import torch


class MapsAFileOnLoad(torch.nn.Module):
    """Its ``__setstate__``, which ``torch.jit.load`` runs, maps ``ckpt_canary.txt`` read-write
    with ``torch.from_file(..., shared=True)`` (creating it) and writes into it."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight

    @torch.jit.export
    def __getstate__(self) -> tuple[torch.Tensor, bool]:
        return (self.weight, self.training)

    @torch.jit.export
    def __setstate__(self, state: tuple[torch.Tensor, bool]) -> None:
        self.weight = state[0]
        self.training = state[1]
        mapped = torch.from_file("ckpt_canary.txt", True, 4, dtype=torch.uint8)
        self.weight = self.weight + mapped.fill_(65).float().sum()


class SavesWhenCalled(torch.nn.Module):
    """Its forward writes a file (``aten::save``) each time the model is called."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        torch.save(x, "ckpt_canary.txt")
        return x


class QuantizedConv(torch.nn.Module):
    """Stock output: a statically quantized conv, whose scripted code has a ``__setstate__``
    that repacks its weights (torch.ops.quantized), and nothing else."""

    def __init__(self) -> None:
        super().__init__()
        self.quant = torch.ao.quantization.QuantStub()
        self.conv = torch.nn.Conv2d(1, 1, 1)
        self.dequant = torch.ao.quantization.DeQuantStub()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dequant(self.conv(self.quant(x)))
