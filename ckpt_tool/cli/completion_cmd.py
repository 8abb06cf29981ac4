"""``ckpt completion SHELL``: print the shell's completion script."""

from __future__ import annotations

from enum import Enum

import typer

from ckpt_tool.cli.application import Command, app, epilog


class Shell(str, Enum):
    bash = "bash"
    zsh = "zsh"
    fish = "fish"
    powershell = "powershell"


_EPILOG = epilog(
    ["ckpt completion bash >> ~/.bashrc",
     "ckpt completion zsh > \"${fpath[1]}/_ckpt\"",
     "ckpt completion fish > ~/.config/fish/completions/ckpt.fish"],
    {0: "the script was printed", 2: "unknown shell"})


@app.command("completion", cls=Command, epilog=_EPILOG)
def completion_command(
    shell: Shell = typer.Argument(..., metavar="SHELL", help="bash, zsh, fish or powershell."),
) -> None:
    """Print the completion script for SHELL (commands, options, their choices, paths)."""
    from typer._completion_shared import get_completion_script

    from ckpt_tool.cli import COMPLETE_VAR
    from ckpt_tool.cli.output import write

    write(get_completion_script(prog_name="ckpt", complete_var=COMPLETE_VAR,
                                shell=shell.value).strip() + "\n")
