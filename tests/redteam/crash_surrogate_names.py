"""A torch.save archive with one extra member whose name holds a byte that is not UTF-8 (0xff).
ckpt decodes zip names with surrogateescape and prints them: under a strict UTF-8 stdout (any
en_US.UTF-8 desktop, or PYTHONIOENCODING=utf-8) lint, inspect and inspect --json end with
"ckpt: internal error: UnicodeEncodeError" (exit 2)."""
import io
import sys
import zipfile

import torch

out = sys.argv[1] if len(sys.argv) > 1 else "model.pt"
buf = io.BytesIO()
torch.save({"weight": torch.zeros(2)}, buf)
src = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
prefix = src.namelist()[0].split("/")[0]
tmp = io.BytesIO()
with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as z:
    for n in src.namelist():
        z.writestr(n, src.read(n))
    z.writestr("extra_X/x", b"hi")  # outside the archive folder: lint reports (prints) its name
open(out, "wb").write(tmp.getvalue().replace(b"extra_X/x", b"extra_\xff/x"))
print("wrote", out)
