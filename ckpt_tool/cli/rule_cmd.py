"""``ckpt rule [CODE]``: explain a lint rule, or list them all."""

from __future__ import annotations

import typer

from ckpt_tool import exitcodes
from ckpt_tool.cli.application import Command, app, epilog, usage_error

_EPILOG = epilog(
    ["ckpt rule CKPT002", "ckpt rule pth-extension",
     "ckpt rule            # every rule, one line each",
     "ckpt rule --all      # every explanation"],
    {0: "the rule was found", 2: "no such rule"})


@app.command("rule", cls=Command, epilog=_EPILOG)
def rule_command(
    rule: str | None = typer.Argument(None, metavar="[CODE|SLUG]",
                                      help="A rule's code (CKPT002) or slug (code-execution)."),
    show_all: bool = typer.Option(False, "--all", help="Print every rule's explanation."),
    as_json: bool = typer.Option(False, "--json", help="The rules as JSON (a list)."),
) -> None:
    """Explain a lint rule: what it finds, why it matters, an example, what to do instead."""
    from ckpt_tool.cli.output import write
    from ckpt_tool.lint.findings import RULES
    from ckpt_tool.lint.rule_docs import find_rule, rule_docs

    if rule is not None:
        found = find_rule(rule)
        if found is None:
            usage_error(f"no rule {rule!r}: `ckpt rule` lists them (CKPT001..CKPT008)")
        rules = [found]
    else:
        rules = list(RULES.values())
    if as_json:
        import json

        write(json.dumps([_rule_json(r, rule_docs()[r.code]) for r in rules], indent=2) + "\n")
    elif rule is not None or show_all:
        write("\n".join(rule_docs()[r.code] for r in rules))
    else:
        from ckpt_tool.cli.output import stdout_width

        width = stdout_width()
        lines = []
        for r in rules:
            line = f"{r.code}  {r.slug:<20}  {r.severity.value:<7}  {'on ' if r.default else 'off'}"
            summary = r.summary
            if width is not None and len(line) + 2 + len(summary) > width:
                summary = summary[: max(10, width - len(line) - 3)] + "…"
            lines.append(f"{line}  {summary}")
        write("\n".join(lines) + "\n")
    raise typer.Exit(exitcodes.OK)


def _rule_json(rule, explanation: str) -> dict:
    return {"code": rule.code, "slug": rule.slug, "severity": rule.severity.value,
            "default": rule.default, "summary": rule.summary, "remedy": rule.remedy,
            "explanation": explanation}
