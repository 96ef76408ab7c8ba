"""The README's "Command line" section says what ``authkestra token`` does: every option,
and the defaults it names, as the command has them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import typer

from authkestra.cli import app

README = Path(__file__).resolve().parents[2] / "README.md"


def section() -> str:
    text = README.read_text()
    start = text.index("## Command line")
    return text[start : text.index("\n## ", start + 1)]


def token_options() -> dict[str, Any]:
    """The token command's options by name (click's, whichever click typer ships)."""
    command: Any = typer.main.get_command(app)
    token = command.commands["token"]
    return {
        name: param
        for param in token.params
        if param.param_type_name == "option"
        for name in param.opts
        if name.startswith("--") and name != "--help"
    }


def test_every_option_of_the_token_command_is_in_the_readme() -> None:
    documented = section()
    missing = [name for name in token_options() if f"`{name}" not in documented]
    assert not missing, f"the README's Command line section lacks {missing}"


def test_the_retries_default_the_readme_gives_is_the_commands() -> None:
    match = re.search(r"`--retries N` \([^)]*default (\d+)", section())
    assert match, "the README gives no default for --retries"
    assert int(match.group(1)) == token_options()["--retries"].default
