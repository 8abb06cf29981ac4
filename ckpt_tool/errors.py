"""One base exception per layer; each message says what, where, and what to do next."""

from __future__ import annotations


class CkptError(Exception):
    """Base of every error ckpt reports as a one-line message (exit code 2)."""


class FormatError(CkptError):
    """The bytes are not a checkpoint we can read, or are corrupt."""


class NotACheckpoint(FormatError):
    """The file is readable but is something else (text, HTML, an LFS pointer...)."""


class GlobalMutation(FormatError):
    """A pickle sets the state of a global itself (BUILD on a class or function it names, not on
    an object it built): torch.load would change the loader's own objects."""

    def __init__(self, global_name: str) -> None:
        super().__init__(f"BUILD sets the state of the global {global_name} itself")
        self.global_name = global_name


class UnsupportedFormat(FormatError):
    """A real checkpoint format that ckpt does not read."""


class LimitExceeded(FormatError):
    """A configured safety limit was hit while reading untrusted input."""


class ConversionError(CkptError):
    """A conversion could not be completed; the destination was not written."""


class MissingExtra(CkptError):
    """A feature needs an optional dependency that is not installed."""


class ConfigError(CkptError):
    """The configuration (pyproject.toml or flags) is invalid."""
