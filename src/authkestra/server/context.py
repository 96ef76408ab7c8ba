"""Everything a request handler needs, built once per application."""

from __future__ import annotations

import dataclasses
import logging
import secrets
from typing import Any

from .client_auth import ClientDirectory
from .keys import KeyRing
from .secret_hashing import SecretHasher
from .settings import ServerSettings
from .shared_state import FailureLimiter, RevocationList
from .store import Store

__all__ = ["ServerContext", "build_context"]

logger = logging.getLogger("authkestra.server")


@dataclasses.dataclass
class ServerContext:
    settings: ServerSettings
    issuer: str
    store: Store
    keys: KeyRing
    hasher: SecretHasher
    clients: ClientDirectory
    limiter: FailureLimiter
    revocations: RevocationList
    redis: Any | None

    def close(self) -> None:
        self.store.close()
        if self.redis is not None:
            self.redis.close()


def hasher_for(settings: ServerSettings, store: Store) -> SecretHasher:
    """The secret hasher with the configured key, or the one generated and kept in the store."""
    key = settings.hmac_key_from_settings()
    if key is None:
        key = store.state("client_secret_hmac_key", lambda: secrets.token_urlsafe(32)).encode()
    return SecretHasher(key)


def build_context(settings: ServerSettings, store: Store | None = None) -> ServerContext:
    store = store or Store(settings.db)
    if settings.migrate:
        store.migrate()
    redis_client = None
    if settings.redis:
        import redis as redis_py

        redis_client = redis_py.Redis.from_url(
            settings.redis, socket_connect_timeout=2, socket_timeout=2
        )
    hasher = hasher_for(settings, store)
    keys = KeyRing(store, alg=settings.signing_alg, cache_seconds=settings.cache_seconds)
    keys.signing_key()  # create the first key now, not in the middle of a request
    return ServerContext(
        settings=settings,
        issuer=settings.effective_issuer(),
        store=store,
        keys=keys,
        hasher=hasher,
        clients=ClientDirectory(store, hasher, cache_seconds=settings.cache_seconds),
        limiter=FailureLimiter(
            window=settings.failure_window,
            max_per_client=settings.max_failures_per_client,
            max_per_address=settings.max_failures_per_address,
            redis=redis_client,
        ),
        revocations=RevocationList(store, redis_client),
        redis=redis_client,
    )
