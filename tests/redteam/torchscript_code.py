"""TorchScript archives whose code calls aten::save (writes a file) inside __setstate__, which
torch.jit.load (so torch.load) runs while loading. ckpt's code scan (lint/torchscript_code.py and
facts._read_torchscript_code) misses it when
  B: the call is written `torch .save(` (the regex wants `torch.save(` with no space),
  C: the call is split over lines inside parentheses (the regex works line by line),
  D: the code member is `<archive>/Code/__torch__.py` (torch's miniz lookup ignores case,
     ckpt only reads members whose second path part is exactly `code`),
  E: the code member ends in `.PY`.
A (plain `torch.save(`) is the control that ckpt does flag. Payload: writes a canary file."""
import os
import sys
import zipfile

import torch

canary = sys.argv[1] if len(sys.argv) > 1 else "/tmp/rt_canary/ts"

class M(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.ones(2)
    def forward(self, x):
        return x + self.w
    @torch.jit.export
    def __getstate__(self):
        return (self.w, self.training)
    @torch.jit.export
    def __setstate__(self, state: tuple[torch.Tensor, bool]):
        self.w = state[0]
        self.training = state[1]

torch.jit.save(torch.jit.script(M()), "ts_base.pt")
src = zipfile.ZipFile("ts_base.pt")

def build(out, call, rename=lambda n: n):
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        for info in src.infolist():
            n, data = info.filename, src.read(info.filename)
            if n.endswith(".debug_pkl"):
                continue
            if n.endswith("code/__torch__.py"):
                anchor = "    self.training = (state)[1]\n"
                data = data.decode().replace(anchor, anchor + call).encode()
                n = rename(n)
            z.writestr(n, data)

build("A_plain.pt", f'    torch.save(state[0], "{canary}_A")\n')
build("B_space.pt", f'    torch .save(state[0], "{canary}_B")\n')
build("C_newline.pt", f'    _x = (torch\n      .save(state[0], "{canary}_C"))\n')
build("D_casedir.pt", f'    torch.save(state[0], "{canary}_D")\n',
      rename=lambda n: n.replace("/code/", "/Code/"))
build("E_casesuffix.pt", f'    torch.save(state[0], "{canary}_E")\n',
      rename=lambda n: n[:-3] + ".PY")
os.remove("ts_base.pt")
print("wrote A_plain.pt B_space.pt C_newline.pt D_casedir.pt E_casesuffix.pt")
