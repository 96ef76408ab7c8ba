"""``authkestra clients``: register and manage the clients of the authorization server."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated

import typer

from .._protocol.client_auth import AuthMethod
from ._store_options import DbOption, fail, open_store, print_json

if TYPE_CHECKING:
    from ..server.store import ClientRecord
    from . import Environment

__all__ = ["register"]

clients_app = typer.Typer(
    help="Register and manage clients (services that get tokens).", no_args_is_help=True
)

#: The client authentication methods the authorization server accepts.
SERVER_AUTH_METHODS = (AuthMethod.CLIENT_SECRET_BASIC, AuthMethod.CLIENT_SECRET_POST)
_CLIENT_ID = re.compile(r"[A-Za-z0-9._~-]{1,128}")
_SCOPE = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")
FormatOption = Annotated[str, typer.Option("--format", help="text or json.")]


def _check_format(env: Environment, value: str) -> None:
    if value not in ("text", "json"):
        raise fail(env, "--format must be text or json", 2)


def _describe(client: ClientRecord) -> dict[str, object]:
    return {
        "client_id": client.client_id,
        "auth_method": client.auth_method,
        "scopes": list(client.scopes),
        "default_scopes": list(client.default_scopes)
        if client.default_scopes is not None
        else None,
        "audiences": list(client.audiences),
        "token_ttl": client.token_ttl,
        "enabled": client.enabled,
        "created_at": client.created_at.isoformat(timespec="seconds"),
    }


def _print_secret(env: Environment, output: str, client_id: str, secret: str, note: str) -> None:
    if output == "json":
        print_json(env, {"client_id": client_id, "client_secret": secret})
        return
    env.stdout.write(f"client_id:     {client_id}\nclient_secret: {secret}\n")
    env.stdout.flush()
    env.stderr.write(f"{note}\n")


@clients_app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The client id, e.g. billing-service.")],
    scope: Annotated[
        list[str] | None, typer.Option("--scope", help="A scope it may ask for (repeatable).")
    ] = None,
    default_scope: Annotated[
        list[str] | None,
        typer.Option("--default-scope", help="Granted when it asks for none (default: all)."),
    ] = None,
    audience: Annotated[
        list[str] | None,
        typer.Option("--audience", help="An API (resource/audience) its tokens may be for."),
    ] = None,
    auth_method: Annotated[
        AuthMethod, typer.Option("--auth-method")
    ] = AuthMethod.CLIENT_SECRET_BASIC,
    token_ttl: Annotated[
        int | None, typer.Option("--token-ttl", min=1, max=86400, help="Seconds.")
    ] = None,
    output: FormatOption = "text",
    db: DbOption = None,
) -> None:
    """Register a client and print its id and a new 256-bit secret (shown only this once)."""
    env: Environment = ctx.obj
    _check_format(env, output)
    if not _CLIENT_ID.fullmatch(name):
        raise fail(env, "the client id may hold letters, digits and . _ ~ - (at most 128)", 2)
    if auth_method is AuthMethod.NONE:
        raise fail(
            env, "only confidential clients get client_credentials tokens: use a secret method", 2
        )
    if auth_method not in SERVER_AUTH_METHODS:
        raise fail(
            env,
            "this server authenticates clients with "
            + " or ".join(m.value for m in SERVER_AUTH_METHODS),
            2,
        )
    scopes = tuple(dict.fromkeys(s for value in scope or [] for s in value.split()))
    defaults = tuple(dict.fromkeys(s for value in default_scope or [] for s in value.split()))
    if any(not _SCOPE.fullmatch(s) for s in scopes):
        raise fail(env, "a scope has characters RFC 6749 does not allow", 2)
    if not set(defaults) <= set(scopes):
        raise fail(env, "--default-scope must be among its --scope values", 2)
    audiences = tuple(dict.fromkeys(audience or []))
    if any(not a or " " in a for a in audiences):
        raise fail(env, "an audience must be a non-empty URI without spaces", 2)

    from ..server.context import hasher_for
    from ..server.store import ClientExists, new_secret

    settings, store = open_store(env, db)
    secret = new_secret()
    try:
        store.create_client(
            name,
            secret_hash=hasher_for(settings, store).hash(secret),
            auth_method=auth_method.value,
            scopes=scopes,
            audiences=audiences,
            default_scopes=defaults or None,
            token_ttl=token_ttl,
        )
    except ClientExists:
        raise fail(env, f"a client {name!r} already exists") from None
    finally:
        store.close()
    _print_secret(env, output, name, secret, "Store the secret now: it is shown only this once.")


@clients_app.command("list")
def list_clients(ctx: typer.Context, output: FormatOption = "text", db: DbOption = None) -> None:
    """List the registered clients."""
    env: Environment = ctx.obj
    _check_format(env, output)
    _, store = open_store(env, db)
    try:
        clients = store.list_clients()
    finally:
        store.close()
    if output == "json":
        print_json(env, [_describe(c) for c in clients])
        return
    for c in clients:
        state = "enabled" if c.enabled else "disabled"
        env.stdout.write(f"{c.client_id}\t{c.auth_method}\t{state}\tscopes={' '.join(c.scopes)}\n")
    env.stdout.flush()


@clients_app.command("show")
def show(
    ctx: typer.Context, client_id: str, output: FormatOption = "text", db: DbOption = None
) -> None:
    """Show one client (never its secret: only a keyed hash is stored)."""
    env: Environment = ctx.obj
    _check_format(env, output)
    from ..server.store import UnknownClient

    _, store = open_store(env, db)
    try:
        client = store.get_client(client_id)
    except UnknownClient:
        raise fail(env, f"no client {client_id!r}") from None
    finally:
        store.close()
    described = _describe(client)
    described["active_secrets"] = len(client.secrets)
    if output == "json":
        print_json(env, described)
        return
    for key, value in described.items():
        env.stdout.write(f"{key + ':':16}{value}\n")
    env.stdout.flush()


@clients_app.command("rotate-secret")
def rotate_secret(
    ctx: typer.Context,
    client_id: str,
    grace: Annotated[
        int | None,
        typer.Option(
            "--grace", min=0, help="Seconds the old secret keeps working [default: 86400]."
        ),
    ] = None,
    output: FormatOption = "text",
    db: DbOption = None,
) -> None:
    """Issue a new secret; the old one keeps working for the grace period."""
    env: Environment = ctx.obj
    _check_format(env, output)
    from ..server.context import hasher_for
    from ..server.store import UnknownClient, new_secret

    settings, store = open_store(env, db)
    secret = new_secret()
    seconds = grace if grace is not None else settings.secret_grace_period
    try:
        until = store.rotate_secret(
            client_id, hasher_for(settings, store).hash(secret), timedelta(seconds=seconds)
        )
    except UnknownClient:
        raise fail(env, f"no client {client_id!r}") from None
    finally:
        store.close()
    _print_secret(
        env,
        output,
        client_id,
        secret,
        f"The old secret keeps working until {until.isoformat(timespec='seconds')}.",
    )


def _set_enabled(ctx: typer.Context, client_id: str, db: str | None, enabled: bool) -> None:
    env: Environment = ctx.obj
    from ..server.store import UnknownClient

    _, store = open_store(env, db)
    try:
        store.set_enabled(client_id, enabled)
    except UnknownClient:
        raise fail(env, f"no client {client_id!r}") from None
    finally:
        store.close()
    env.stdout.write(f"{client_id} {'enabled' if enabled else 'disabled'}\n")


@clients_app.command("disable")
def disable(ctx: typer.Context, client_id: str, db: DbOption = None) -> None:
    """Refuse the client new tokens; its current tokens introspect inactive."""
    _set_enabled(ctx, client_id, db, False)


@clients_app.command("enable")
def enable(ctx: typer.Context, client_id: str, db: DbOption = None) -> None:
    """Undo ``disable``."""
    _set_enabled(ctx, client_id, db, True)


@clients_app.command("delete")
def delete(ctx: typer.Context, client_id: str, db: DbOption = None) -> None:
    """Delete the client and its secrets."""
    env: Environment = ctx.obj
    from ..server.store import UnknownClient

    _, store = open_store(env, db)
    try:
        store.delete_client(client_id)
    except UnknownClient:
        raise fail(env, f"no client {client_id!r}") from None
    finally:
        store.close()
    env.stdout.write(f"{client_id} deleted\n")


def register(app: typer.Typer) -> None:
    """Add ``clients`` to the ``authkestra`` app."""
    app.add_typer(clients_app, name="clients")
