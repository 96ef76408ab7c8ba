"""``authkestra demo``: the whole job end to end, on loopback."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from ._store_options import fail

if TYPE_CHECKING:
    from . import Environment

__all__ = ["register"]


def demo(ctx: typer.Context) -> None:
    """Start a server, register a client, get a token, call a protected API with it, stop."""
    env: Environment = ctx.obj
    try:
        from ..demo import run_demo
    except ImportError as exc:
        raise fail(
            env, f"the demo needs the server extras ({exc.name}): pip install 'authkestra[server]'"
        ) from None
    raise typer.Exit(run_demo(env.stdout))


def register(app: typer.Typer) -> None:
    """Add ``demo`` to the ``authkestra`` app."""
    app.command("demo")(demo)
