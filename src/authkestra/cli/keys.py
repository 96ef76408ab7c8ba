"""``authkestra keys``: the authorization server's token signing keys."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Annotated

import typer

from ._store_options import DbOption, fail, open_store, print_json

if TYPE_CHECKING:
    from . import Environment

__all__ = ["register"]

keys_app = typer.Typer(help="List and rotate token signing keys.", no_args_is_help=True)


@keys_app.command("list")
def list_keys(ctx: typer.Context, db: DbOption = None) -> None:
    """The published keys: the one that signs, and retired ones still in the JWKS."""
    env: Environment = ctx.obj
    _, store = open_store(env, db)
    try:
        keys = store.signing_keys()
    finally:
        store.close()
    print_json(
        env,
        [
            {
                "kid": k.kid,
                "alg": k.alg,
                "signing": k.retired_at is None,
                "created_at": k.created_at.isoformat(timespec="seconds"),
                "published_until": k.published_until.isoformat(timespec="seconds")
                if k.published_until
                else None,
            }
            for k in keys
        ],
    )


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
    db: DbOption = None,
) -> None:
    """Start signing with a new key; old keys stay published until their tokens have expired."""
    env: Environment = ctx.obj
    from ..server.keys import ALGORITHMS, KeyRing

    settings, store = open_store(env, db)
    try:
        algorithm = alg or settings.signing_alg
        if algorithm not in ALGORITHMS:
            raise fail(env, f"--alg must be one of {', '.join(ALGORITHMS)}", 2)
        longest = max(
            [c.token_ttl or settings.default_token_ttl for c in store.list_clients()] or [0]
        )
        seconds = (
            keep_old_for if keep_old_for is not None else max(longest, settings.default_token_ttl)
        )
        ring = KeyRing(store, alg=algorithm, cache_seconds=0)
        ring.signing_key()  # there is an old key to retire (a fresh store has none yet)
        kid = ring.rotate(keep_old_for=timedelta(seconds=seconds), alg=algorithm)
    finally:
        store.close()
    env.stdout.write(
        f"new signing key {kid} ({algorithm}); old keys stay published for {seconds} s\n"
    )


def register(app: typer.Typer) -> None:
    """Add ``keys`` to the ``authkestra`` app."""
    app.add_typer(keys_app, name="keys")
