"""Exit codes, named once (documented in the README)."""

OK = 0
FINDINGS = 1
"""lint: something was reported; lint --fix: a file was changed; diff: the files differ."""
ERROR = 2
"""A file could not be read or converted, bad usage, or an internal error."""
