"""The ``authkestra`` command line: one Typer app, one module per command or command group.

Each command module exposes ``register(app)`` and is listed in :data:`COMMANDS`.
Commands read the environment and the standard streams only through the
:class:`Environment` in the context object, never from ``os.environ`` or
``sys.std*`` directly, so tests and embedding programs can run them in-process
with their own::

    main(["token", "--format", "json"], Environment(environ={...}, stdout=buffer))

Importing this package does no I/O and reads no settings: the work happens
when a command runs.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, TextIO

import typer

from .._version import __version__
from . import (
    clients,
    demo,
    init,
    issuers,
    keys,
    registration_tokens,
    serve,
    token,
    token_tools,
)
from .exit_codes import ExitCode

__all__ = ["COMMANDS", "Environment", "app", "main"]

PROG_NAME = "authkestra"


@dataclasses.dataclass(frozen=True)
class Environment:
    """What a command reads and writes besides its arguments.

    Each field defaults to the process's own (``os.environ``, ``sys.stdin``, ...),
    taken when the ``Environment`` is built. Pass another mapping or
    ``io.StringIO`` streams to run a command in isolation.
    """

    environ: Mapping[str, str] = dataclasses.field(default_factory=lambda: os.environ)
    stdin: TextIO = dataclasses.field(default_factory=lambda: sys.stdin)
    stdout: TextIO = dataclasses.field(default_factory=lambda: sys.stdout)
    stderr: TextIO = dataclasses.field(default_factory=lambda: sys.stderr)


app = typer.Typer(
    name=PROG_NAME,
    no_args_is_help=True,
    add_completion=False,
    # Plain click output: usage errors and help stay stable, one-column text for
    # scripts and logs, whether or not rich happens to be installed.
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"{PROG_NAME} {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_show_version, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
) -> None:
    """Machine-to-machine OAuth 2.0 (Client Credentials) from the command line."""
    # Runs before any subcommand parses its arguments, so every command finds
    # an Environment in ctx.obj: the one main() or a test passed in, else the process's.
    if not isinstance(ctx.obj, Environment):
        ctx.obj = Environment()


#: ``register`` of every command module, in the order ``--help`` lists them.
COMMANDS: tuple[Callable[[typer.Typer], None], ...] = (
    token.register,
    token_tools.register,
    serve.register,
    init.register,
    clients.register,
    keys.register,
    issuers.register,
    registration_tokens.register,
    demo.register,
)

for _register in COMMANDS:
    _register(app)


def main(argv: Sequence[str] | None = None, environment: Environment | None = None) -> int:
    """Run ``authkestra`` with ``argv`` (default ``sys.argv[1:]``); return the exit status.

    The console script calls this with no arguments; tests and embedding
    programs pass ``argv`` and an :class:`Environment`.
    """
    command = typer.main.get_command(app)
    try:
        command.main(
            args=list(argv) if argv is not None else None, prog_name=PROG_NAME, obj=environment
        )
    except SystemExit as exit_:
        # Standalone mode always ends in sys.exit(); turn it back into a return value.
        code = exit_.code
        if code is None:
            return ExitCode.OK
        return code if isinstance(code, int) else ExitCode.INTERNAL_ERROR
    except KeyboardInterrupt:
        # Typer maps Ctrl-C inside a command to 130 itself; this covers the moments around it.
        return ExitCode.INTERRUPTED
    return ExitCode.OK
