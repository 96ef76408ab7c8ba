"""``authkestra init``: make the authorization server's store (the one command besides ``serve``
that may)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from ._store_options import (
    DbOption,
    MasterKeyOption,
    fail,
    safe_url,
    said_master_key,
    server_settings,
    store_failure,
)

if TYPE_CHECKING:
    from . import Environment

__all__ = ["register"]


def init(ctx: typer.Context, db: DbOption = None, master_key_file: MasterKeyOption = None) -> None:
    """Make the store (SQLite file 0600, its master key beside it) and its schema.

    An existing store is brought up to date instead (schema, secrets sealed). The
    management commands (clients, keys) never make a store: they refuse one that
    does not exist, so a mistyped --db cannot leave an empty store behind.
    """
    env: Environment = ctx.obj
    from ..server.context import open_store
    from ..server.store import StoreMissing

    settings = server_settings(env, db=db, master_key_file=master_key_file)
    shown = safe_url(settings.db)
    try:
        try:
            existing = open_store(settings, create=False)
        except StoreMissing:
            existing = None
        store = existing or open_store(settings)
    except Exception as exc:
        raise fail(env, *store_failure(exc, settings)) from None
    said_master_key(env, store)
    store.close()
    env.stdout.write(f"store {shown} {'is up to date' if existing else 'made'}\n")


def register(app: typer.Typer) -> None:
    """Add ``init`` to the ``authkestra`` app."""
    app.command("init")(init)
