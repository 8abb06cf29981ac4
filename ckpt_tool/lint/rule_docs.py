"""Each rule's explanation, in ruff's four parts (what it finds, why it matters, an example, what
to do instead), read from ``data/rules.md``: the same text is the README's "Rules" section, and
``tests/test_readme.py`` holds the two equal, so ``ckpt rule CODE`` and the README never drift.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

from ckpt_tool.lint.findings import BY_SLUG, RULES, Rule

_HEADING = re.compile(r"^#### (CKPT\d{3}) (\S+)$", re.M)


def rules_markdown() -> str:
    """The whole of ``data/rules.md``."""
    return resources.files("ckpt_tool.lint").joinpath("data/rules.md").read_text("utf-8")


@cache
def rule_docs() -> dict[str, str]:
    """Code -> its section, heading included."""
    text = rules_markdown()
    starts = list(_HEADING.finditer(text))
    sections = {}
    for match, following in zip(starts, [*starts[1:], None], strict=True):
        end = following.start() if following else len(text)
        sections[match.group(1)] = text[match.start():end].strip() + "\n"
    return sections


def find_rule(selector: str) -> Rule | None:
    """A rule by code (any case) or slug."""
    return RULES.get(selector.strip().upper()) or BY_SLUG.get(selector.strip().lower())
