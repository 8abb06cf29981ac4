import zipfile

import torch


class M(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(2, 2)
    def forward(self, x):
        return self.lin(x)
ep = torch.export.export(M(), (torch.randn(1, 2),))
torch.export.save(ep, "base.pt2")
z = zipfile.ZipFile("base.pt2")
for i in z.infolist(): print(i.filename, i.file_size, i.compress_type)
for n in z.namelist():
    if n.endswith(".json") and ("config" in n or "weights" in n or "constants" in n):
        print(n, z.read(n)[:600])
