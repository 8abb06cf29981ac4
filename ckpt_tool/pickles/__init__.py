"""Pickles and their policy: the opcode walk, the restricted unpickler that imports nothing, the
reviewed table of globals, and torch's weights-only verdict."""
