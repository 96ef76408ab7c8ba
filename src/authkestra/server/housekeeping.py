"""Deleting what can no longer be used: withdrawn signing keys (their private parts with
them), secrets past their grace period, expired revocations and used assertions.

Run at start and then every :data:`PURGE_EVERY` seconds by each server process; the
management commands that retire something (``keys rotate``, ``clients rotate-secret``)
purge too. Every instance may run it: deleting what has expired twice is harmless.
"""

from __future__ import annotations

import logging

import anyio
import anyio.to_thread

from .store import Store

__all__ = ["PURGE_EVERY", "purge", "purge_forever"]

logger = logging.getLogger("authkestra.server")

#: Seconds between two purges by a running server.
PURGE_EVERY = 300.0


def purge(store: Store) -> dict[str, int]:
    """Purge ``store`` once; what was deleted is logged (counts only)."""
    deleted = store.purge_expired()
    if deleted.get("signing_keys") or deleted.get("client_secrets"):
        logger.info(
            "authkestra server: deleted %d withdrawn signing key(s) and %d expired client"
            " secret(s)",
            deleted["signing_keys"],
            deleted["client_secrets"],
        )
    return deleted


async def purge_forever(store: Store, interval: float = PURGE_EVERY) -> None:
    """:func:`purge` every ``interval`` seconds (run as a task of the app)."""
    while True:
        await anyio.sleep(interval)
        try:
            await anyio.to_thread.run_sync(purge, store)
        except Exception:  # the store is down: try again next time
            logger.warning("authkestra server: could not purge expired keys and secrets")
