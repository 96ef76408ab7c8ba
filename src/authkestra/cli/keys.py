"""``authkestra keys``: the authorization server's token signing keys."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
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
    from ..server.keys import signing_record

    _, store = open_store(env, db)
    try:
        keys = store.signing_keys()
    finally:
        store.close()
    current = signing_record(keys, datetime.now(timezone.utc))
    signing = current.kid if current is not None else None
    print_json(
        env,
        [
            {
                "kid": k.kid,
                "alg": k.alg,
                "signing": k.kid == signing,
                "created_at": k.created_at.isoformat(timespec="seconds"),
                "signs_until": k.retired_at.isoformat(timespec="seconds") if k.retired_at else None,
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
) -> None:
    """Publish a new key, then sign with it; old keys stay published until their tokens
    have expired."""
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
        kid = ring.rotate(
            keep_old_for=timedelta(seconds=seconds),
            alg=algorithm,
            publish_ahead=timedelta(seconds=publish_ahead),
        )
    finally:
        store.close()
    when = f"in {publish_ahead} s" if publish_ahead else "now"
    env.stdout.write(
        f"new signing key {kid} ({algorithm}), published now, signing {when};"
        f" old keys stay published for {seconds} s after that\n"
    )


def register(app: typer.Typer) -> None:
    """Add ``keys`` to the ``authkestra`` app."""
    app.add_typer(keys_app, name="keys")
