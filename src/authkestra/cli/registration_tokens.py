"""``authkestra registration-tokens``: initial access tokens for dynamic client registration."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Annotated

import typer

from ._management import management
from ._render import check_text_or_json
from ._store_options import DbOption, MasterKeyOption, ServerOption, print_json

if TYPE_CHECKING:
    from . import Environment

__all__ = ["register"]

tokens_app = typer.Typer(
    help="Initial access tokens: who may register clients at /register (serve --registration).",
    no_args_is_help=True,
)


@tokens_app.command("create")
def create(
    ctx: typer.Context,
    scope: Annotated[
        list[str] | None,
        typer.Option("--scope", help="A scope the clients it registers may have (repeatable)."),
    ] = None,
    audience: Annotated[
        list[str] | None,
        typer.Option("--audience", help="An audience they may have (repeatable)."),
    ] = None,
    expires_in: Annotated[
        int, typer.Option("--expires-in", min=1, max=30 * 86400, help="Seconds it lives.")
    ] = 86400,
    output: Annotated[str, typer.Option("--format", help="text or json.")] = "text",
    db: DbOption = None,
    master_key_file: MasterKeyOption = None,
    server: ServerOption = None,
) -> None:
    """Make an initial access token (RFC 7591 §3): its holder may register clients with at
    most these scopes and audiences until it expires. Printed once: hand it over safely.

    Made from the store (--db), it names the issuer of AUTHKESTRA_SERVER_ISSUER: give
    the one the server runs with.
    """
    env: Environment = ctx.obj
    check_text_or_json(env, output)
    with management(env, server=server, db=db, master_key_file=master_key_file) as backend:
        made = backend.create_registration_token(
            scope=" ".join(scope or []), audience=list(audience or []), expires_in=expires_in
        )
    if output == "json":
        print_json(env, made)
        return
    until = datetime.fromtimestamp(made["expires_at"], timezone.utc).isoformat(timespec="seconds")
    env.stdout.write(f"{made['initial_access_token']}\n")
    env.stderr.write(
        f"For {made['registration_endpoint']} until {until}; clients with at most scope"
        f" {made['scope'] or '(none)'!r} and audience {' '.join(made['audience']) or '(none)'}.\n"
    )


def register(app: typer.Typer) -> None:
    """Add ``registration-tokens`` to the ``authkestra`` app."""
    app.add_typer(tokens_app, name="registration-tokens")
