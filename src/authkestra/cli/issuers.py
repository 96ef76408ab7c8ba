"""``authkestra issuers``: the external issuers whose tokens authenticate federated clients."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from ._management import management
from ._render import ListFormatOption, check_format, check_text_or_json, print_records
from ._store_options import DbOption, MasterKeyOption, ServerOption, print_json

if TYPE_CHECKING:
    from . import Environment

__all__ = ["register"]

issuers_app = typer.Typer(
    help="Trusted issuers: platforms (Kubernetes, GitHub Actions, SPIFFE) whose tokens"
    " authenticate the clients bound to them, with no secret.",
    no_args_is_help=True,
)

_COLUMNS = ("name", "issuer", "jwks_url", "audience", "max_lifetime")


@issuers_app.command("add")
def add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="What clients call it, e.g. prod-cluster.")],
    issuer: Annotated[
        str,
        typer.Option(
            "--issuer",
            metavar="URL",
            help="The exact iss of its tokens (https).",
            show_default=False,
        ),
    ],
    jwks_url: Annotated[
        str | None,
        typer.Option(
            "--jwks-url", metavar="URL", help="Its keys, if its metadata does not say where."
        ),
    ] = None,
    audience: Annotated[
        str | None,
        typer.Option(
            "--audience",
            metavar="AUD",
            help="The aud its tokens carry for this server [default: this server's issuer"
            " or token endpoint].",
        ),
    ] = None,
    max_lifetime: Annotated[
        int | None,
        typer.Option(
            "--max-lifetime",
            metavar="SECONDS",
            help="The longest-lived token of it accepted [default: federation_max_lifetime].",
        ),
    ] = None,
    output: Annotated[str, typer.Option("--format", help="text or json.")] = "text",
    db: DbOption = None,
    master_key_file: MasterKeyOption = None,
    server: ServerOption = None,
) -> None:
    """Trust an issuer's tokens as client assertions.

    Then bind a client to it and a subject:
    authkestra clients create reporter --trusted-issuer NAME --subject SUB
    """
    env: Environment = ctx.obj
    check_text_or_json(env, output)
    with management(env, server=server, db=db, master_key_file=master_key_file) as backend:
        added = backend.add_issuer(
            name, issuer=issuer, jwks_url=jwks_url, audience=audience, max_lifetime=max_lifetime
        )
    if output == "json":
        print_json(env, added)
        return
    env.stdout.write(f"trusted issuer {added['name']}: {added['issuer']}\n")


@issuers_app.command("list")
def list_issuers(
    ctx: typer.Context,
    output: ListFormatOption = "table",
    db: DbOption = None,
    master_key_file: MasterKeyOption = None,
    server: ServerOption = None,
) -> None:
    """The trusted issuers."""
    env: Environment = ctx.obj
    check_format(env, output)
    with management(env, server=server, db=db, master_key_file=master_key_file) as backend:
        issuers = backend.list_issuers()
    print_records(env, output, issuers, _COLUMNS)


@issuers_app.command("remove")
def remove(
    ctx: typer.Context,
    name: str,
    db: DbOption = None,
    master_key_file: MasterKeyOption = None,
    server: ServerOption = None,
) -> None:
    """Trust an issuer no more (refused while clients are bound to it)."""
    env: Environment = ctx.obj
    with management(env, server=server, db=db, master_key_file=master_key_file) as backend:
        backend.remove_issuer(name)
    env.stdout.write(f"trusted issuer {name} removed\n")


def register(app: typer.Typer) -> None:
    """Add ``issuers`` to the ``authkestra`` app."""
    app.add_typer(issuers_app, name="issuers")
