"""``authkestra keys``: the authorization server's token signing keys."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ._management import management
from ._render import ListFormatOption, check_format, print_records
from ._store_options import DbOption, MasterKeyOption, ServerOption, fail, open_store

if TYPE_CHECKING:
    from . import Environment

__all__ = ["register"]

keys_app = typer.Typer(
    help="List, rotate and withdraw token signing keys; reseal them under a new master key.",
    no_args_is_help=True,
)


@keys_app.command("list")
def list_keys(
    ctx: typer.Context,
    output: ListFormatOption = "table",
    db: DbOption = None,
    master_key_file: MasterKeyOption = None,
    server: ServerOption = None,
) -> None:
    """The published keys: the one that signs, and retired ones still in the JWKS."""
    env: Environment = ctx.obj
    check_format(env, output)
    with management(env, server=server, db=db, master_key_file=master_key_file) as backend:
        keys = backend.list_keys()
    print_records(
        env, output, keys, ("kid", "alg", "signing", "created_at", "signs_until", "published_until")
    )


@keys_app.command("withdraw")
def withdraw(
    ctx: typer.Context,
    kid: Annotated[str, typer.Argument(help="The key id (see 'keys list').")],
    db: DbOption = None,
    master_key_file: MasterKeyOption = None,
    server: ServerOption = None,
) -> None:
    """Withdraw a key from signing and from the JWKS at once, and delete it (a key that
    leaked). Tokens it signed stop verifying; if it signs now, a new key takes over."""
    env: Environment = ctx.obj
    with management(env, server=server, db=db, master_key_file=master_key_file) as backend:
        try:
            replacement = backend.withdraw_key(kid)["signing_now"]
        except KeyError:
            raise fail(env, f"no published key {kid!r} (see 'authkestra keys list')") from None
    env.stdout.write(f"key {kid} withdrawn and deleted\n")
    if replacement is not None:
        env.stdout.write(f"new signing key {replacement}, signing now\n")


@keys_app.command("rotate")
def rotate(
    ctx: typer.Context,
    alg: Annotated[
        str | None, typer.Option("--alg", help="ES256, EdDSA or RS256 [default: the server's].")
    ] = None,
    keep_old_for: Annotated[
        int | None,
        typer.Option(
            "--keep-old-for",
            min=0,
            help="Seconds the old keys stay in the JWKS [default: the longest token lifetime].",
        ),
    ] = None,
    publish_ahead: Annotated[
        int,
        typer.Option(
            "--publish-ahead",
            min=0,
            help="Seconds the new key is published before it signs, so every API has"
            " fetched it first; 0 signs with it at once (a key to replace now).",
        ),
    ] = 120,
    db: DbOption = None,
    master_key_file: MasterKeyOption = None,
    server: ServerOption = None,
) -> None:
    """Publish a new key, then sign with it; old keys stay published until their tokens
    have expired."""
    env: Environment = ctx.obj
    from ..server.keys import ALGORITHMS

    if alg is not None and alg not in ALGORITHMS:
        raise fail(env, f"--alg must be one of {', '.join(ALGORITHMS)}", 2)
    with management(env, server=server, db=db, master_key_file=master_key_file) as backend:
        made = backend.rotate_keys(alg=alg, keep_old_for=keep_old_for, publish_ahead=publish_ahead)
    when = f"in {publish_ahead} s" if publish_ahead else "now"
    env.stdout.write(
        f"new signing key {made['kid']} ({made['alg']}), published now, signing {when};"
        f" old keys stay published for {made['keep_old_for']} s after that\n"
    )


@keys_app.command("rewrap")
def rewrap(
    ctx: typer.Context,
    new_master_key_file: Annotated[
        Path | None,
        typer.Option(
            "--new-master-key-file",
            metavar="FILE",
            help="The master key to seal under from now on: used if it exists, made if not"
            " [default: a new key in place of the SQLite store's own, beside it].",
        ),
    ] = None,
    db: DbOption = None,
    master_key_file: MasterKeyOption = None,
) -> None:
    """Seal the store's secrets (signing keys, HMAC key) under a new master key.

    In one transaction: afterwards only the new key opens the store; start every
    server with it. Tokens already issued stay valid (the keys themselves are kept).
    """
    env: Environment = ctx.obj
    from ..server.logs import audit
    from ..server.master_key import MasterKey, MasterKeyError, default_master_key_path

    settings, store = open_store(env, db, master_key_file)
    try:
        if new_master_key_file is not None:
            target, replaces = new_master_key_file, None
        else:
            replaces = default_master_key_path(settings.db)
            if settings.master_key_file is not None or replaces is None:
                raise fail(
                    env,
                    "give --new-master-key-file FILE: the store's master key is not the"
                    " default one beside an SQLite store",
                    2,
                )
            target = replaces.with_name(replaces.name + ".new")
            target.unlink(missing_ok=True)  # a leftover of a rewrap that did not finish
        try:
            new_key = MasterKey.load(target) if target.exists() else MasterKey.generate(target)
        except MasterKeyError as exc:
            raise fail(env, str(exc), 2) from None
        count = store.reseal(new_key)
        audit("master_key_rewrapped", secrets=count, door="cli")
        if replaces is not None:
            os.replace(target, replaces)  # the store opens with it from now on
            target = replaces
    finally:
        store.close()
    env.stdout.write(f"{count} secrets sealed under the master key {target}\n")
    if new_master_key_file is not None:
        env.stderr.write(
            f"authkestra: from now on give --master-key-file {target} (or"
            " AUTHKESTRA_SERVER_MASTER_KEY_FILE) to every server and command of this store\n"
        )


def register(app: typer.Typer) -> None:
    """Add ``keys`` to the ``authkestra`` app."""
    app.add_typer(keys_app, name="keys")
