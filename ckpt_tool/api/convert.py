"""``convert_one``: write one checkpoint in another format, reported as ``ckpt convert --json``
reports it. The conversion itself is ``ckpt_tool.convert.core.convert_file``."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from typing import Any

from ckpt_tool.api.results import ERROR, LimitsLike, as_limits, as_path, guarded, with_outcome
from ckpt_tool.convert.options import CastTo, ConvertOptions, ConvertResult, Target
from ckpt_tool.errors import ConfigError
from ckpt_tool.exitcodes import OK


def convert_one(src: Any, dst: Any = None, *, to: str = "safetensors", key: str | None = None,
                all_tensors: bool = False, include_optimizer: bool = False,
                strip_prefix: Iterable[str] = (), rename: Iterable[str | tuple[str, str]] = (),
                copy_shared: bool = False, skip_unsupported: bool = False,
                dtype: str | None = None, shard_size: int | str | None = None,
                verify: bool = True, force: bool = False, move: bool = False,
                rewrite: bool = False, limits: LimitsLike = None) -> dict[str, Any]:
    """Convert ``src`` (a file, a folder or index that is one model, or a URL) to ``dst``
    (default: beside it, with the new extension; a URL needs ``dst``)
    and return the ``ckpt convert --json`` document of that one file (schema 1) with ``path``,
    ``exit_code`` (0, or 2 when it failed) and ``error``. The source is never modified; a failed
    conversion leaves nothing behind.

    The options are ``ckpt convert``'s: ``to`` (``safetensors``, ``pt``, ``pth.tar``, ``pwf``,
    ``bin``, ``ckpt``), ``key``, ``all_tensors``, ``include_optimizer``, ``strip_prefix``,
    ``rename`` (``"REGEX=REPLACEMENT"`` or ``(regex, replacement)``), ``copy_shared``,
    ``skip_unsupported``, ``dtype`` (``bf16``, ``fp16``, ``fp32``), ``shard_size`` (bytes or
    ``"5GB"``), ``verify``, ``force``, ``move``, ``rewrite``, ``limits``.
    """
    path = as_path(src)

    def run() -> dict[str, Any]:
        options = convert_options(
            to=to, key=key, all_tensors=all_tensors, include_optimizer=include_optimizer,
            strip_prefix=strip_prefix, rename=rename, copy_shared=copy_shared,
            skip_unsupported=skip_unsupported, dtype=dtype, shard_size=shard_size,
            verify=verify, force=force, move=move, rewrite=rewrite, limits=limits)
        dest = as_path(dst) if dst is not None else default_destination(path, options.target)
        from ckpt_tool.convert.core import convert_file

        return convert_result(convert_file(path, dest, options))

    return guarded(run, lambda message: convert_result(ConvertResult(path, error=message)))


def convert_options(*, to: str | Target = Target.SAFETENSORS, key: str | None = None,
                    all_tensors: bool = False, include_optimizer: bool = False,
                    strip_prefix: Iterable[str] = (),
                    rename: Iterable[str | tuple[str, str]] = (), copy_shared: bool = False,
                    skip_unsupported: bool = False, dtype: str | CastTo | None = None,
                    shard_size: int | str | None = None, verify: bool = True,
                    force: bool = False, move: bool = False, rewrite: bool = False,
                    limits: LimitsLike = None) -> ConvertOptions:
    """Checked ``ConvertOptions``; a ``ConfigError`` says what is wrong, in the CLI's words."""
    options = ConvertOptions(
        target=_choice(Target, to, "--to"), key=key, all_tensors=all_tensors,
        include_optimizer=include_optimizer,
        strip_prefixes=tuple([strip_prefix] if isinstance(strip_prefix, str) else strip_prefix),
        renames=tuple(parse_rename(item) if isinstance(item, str) else _pair(item)
                      for item in ([rename] if isinstance(rename, str) else rename)),
        copy_shared=copy_shared, skip_unsupported=skip_unsupported,
        cast=None if dtype is None else _choice(CastTo, dtype, "--dtype"),
        shard_size=parse_shard_size(shard_size), verify=verify, force=force, move=move,
        rewrite=rewrite, limits=as_limits(limits))
    check_combinations(options)
    return options


def _choice(kind: Any, value: Any, flag: str) -> Any:
    try:
        return kind(value)
    except ValueError:
        choices = ", ".join(member.value for member in kind)
        raise ConfigError(f"{flag} takes one of {choices}, not {value!r}") from None


def _pair(item: Any) -> tuple[str, str]:
    pattern, replacement = item
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ConfigError(f"--rename: bad regex {pattern!r}: {exc}") from None
    return str(pattern), str(replacement)


def parse_rename(text: str) -> tuple[str, str]:
    """Split REGEX=REPLACEMENT at the first ``=`` that leaves a valid regex (``(?<=x)`` has
    one)."""
    for match in re.finditer("=", text):
        pattern = text[: match.start()]
        try:
            re.compile(pattern)
        except re.error:
            continue
        if pattern:
            return pattern, text[match.end():]
    raise ConfigError(f"--rename takes REGEX=REPLACEMENT, got {text!r}")


def parse_shard_size(value: int | str | None) -> int | None:
    """Bytes; 0 for ``none`` (one file); None when not given (the default applies)."""
    if value is None:
        return None
    if isinstance(value, str) and value.strip().lower() == "none":
        return 0
    if isinstance(value, int) and not isinstance(value, bool):
        size = value
    else:
        from ckpt_tool.render.units import parse_size

        try:
            size = parse_size(str(value))
        except ValueError:
            raise ConfigError(f"--shard-size: not a size: {value!r} (try 5GB or 500MB)") from None
    if size <= 0:
        raise ConfigError("--shard-size must be more than 0")
    return size


def check_combinations(options: ConvertOptions) -> None:
    if options.target is Target.SAFETENSORS and (options.move or options.rewrite):
        raise ConfigError("--move and --rewrite go with a torch --to (pt, pth.tar, pwf, bin, "
                          "ckpt)")
    if options.move and options.rewrite:
        raise ConfigError("--move renames the file as it is; --rewrite writes a new one: pick "
                          "one")
    safetensors_only = {"--key": options.key, "--all": options.all_tensors,
                        "--include-optimizer": options.include_optimizer,
                        "--strip-prefix": options.strip_prefixes, "--rename": options.renames,
                        "--copy-shared": options.copy_shared,
                        "--skip-unsupported": options.skip_unsupported, "--dtype": options.cast,
                        "--shard-size": options.shard_size}
    used = [name for name, value in safetensors_only.items() if value]
    if options.target is not Target.SAFETENSORS and used:
        raise ConfigError(f"{', '.join(used)} go with --to safetensors")
    if options.key is not None and options.all_tensors:
        raise ConfigError("--key and --all both choose what to convert: pick one")


def default_destination(source: str, target: Target) -> str:
    from ckpt_tool.convert.destinations import destinations

    model = os.path.isdir(source) or source.endswith(".index.json")
    return destinations([source], target, None, models=[model])[0]


def convert_result(result: ConvertResult) -> dict[str, Any]:
    from ckpt_tool.render.convert_json import convert_document

    return with_outcome(convert_document([result]), result.source,
                        OK if result.ok else ERROR, result.error)
