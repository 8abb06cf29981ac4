"""Exit codes, named once (documented in the README and in each command's --help)."""

OK = 0
FINDINGS = 1
"""lint: something was reported; lint --fix: a file was changed; diff: the files differ."""
ERROR = 2
"""A file could not be read or converted, bad usage, or an internal error."""
INTERRUPTED = 130
"""Ctrl-C (128 + SIGINT, as a shell reports it)."""
PIPE_CLOSED = 141
"""The reader of stdout went away (``| head``): 128 + SIGPIPE, as a shell reports a process
that a closed pipe stopped."""
