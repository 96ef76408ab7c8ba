"""Everything a request handler needs, built once per application."""

from __future__ import annotations

import dataclasses
import logging
import math
import secrets
from typing import Any

from .client_assertions import AssertionVerifier
from .client_auth import ClientDirectory
from .dpop import DPoPNonces, DPoPVerifier
from .federation import TrustedIssuers
from .housekeeping import purge
from .jwks_uri import RemoteKeySets
from .keys import KeyRing
from .mtls import ClientCAs, MutualTLS
from .revocation_list import RevocationPublisher
from .secret_box import SecretBox
from .secret_hashing import SecretHasher
from .settings import ServerSettings
from .shared_state import AssertionReplayCache, FailureLimiter, RevocationList
from .store import Store

__all__ = [
    "ServerContext",
    "build_context",
    "hasher_for",
    "open_store",
    "secret_box_for",
    "server_key",
]

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
    revocation_list: RevocationPublisher | None = None
    assertions: AssertionVerifier | None = None
    dpop: DPoPVerifier | None = None
    mtls: MutualTLS | None = None

    def close(self) -> None:
        self.store.close()
        if self.redis is not None:
            self.redis.close()


def server_key(settings: ServerSettings, store: Store) -> bytes:
    """The key that protects client secrets: configured, or generated once and kept in the store."""
    key = settings.hmac_key_from_settings()
    if key is None:
        key = store.state("client_secret_hmac_key", lambda: secrets.token_urlsafe(32)).encode()
    return key


def hasher_for(settings: ServerSettings, store: Store) -> SecretHasher:
    """The secret hasher with the configured key, or the one generated and kept in the store."""
    return SecretHasher(server_key(settings, store))


def secret_box_for(settings: ServerSettings, store: Store) -> SecretBox:
    """What encrypts ``client_secret_jwt`` secrets: a key derived from :func:`server_key`."""
    return SecretBox(server_key(settings, store))


def open_store(settings: ServerSettings, *, create: bool = True) -> Store:
    """The store ``settings`` name, its schema current and its secrets sealed.

    ``create=False``: StoreMissing rather than a new store. MasterKeyError when its
    master key cannot be had or does not open it.
    """
    store = Store(settings.db, master_key=settings.master_key(), create=create)
    try:
        if settings.migrate:
            store.migrate()
        store.seal_secrets()
    except BaseException:
        store.close()
        raise
    return store


def _failures_per_process(settings: ServerSettings, shared: bool) -> int:
    """The failure limit this process enforces: the whole of it when the counts are shared
    (Redis) or it is the only worker; else its share (the kernel spreads an address's
    connections over the workers, so the total stays about the limit)."""
    workers = settings.workers or 1
    if shared or workers == 1:
        return settings.max_failures_per_address
    return max(1, math.ceil(settings.max_failures_per_address / workers))


def build_context(settings: ServerSettings, store: Store | None = None) -> ServerContext:
    store = store or open_store(settings)
    purge(store)  # a key withdrawn or a secret expired while no server ran goes now
    redis_client = None
    if settings.redis:
        import redis as redis_py

        redis_client = redis_py.Redis.from_url(
            settings.redis, socket_connect_timeout=2, socket_timeout=2
        )
    key = server_key(settings, store)
    hasher = SecretHasher(key)
    keys = KeyRing(store, alg=settings.signing_alg, cache_seconds=settings.cache_seconds)
    keys.signing_key()  # create the first key now, not in the middle of a request
    issuer = settings.effective_issuer()
    replay = AssertionReplayCache(store, redis_client)
    federation = TrustedIssuers(
        store,
        server_issuer=issuer,
        token_endpoint=settings.endpoint("/token"),
        replay=replay,
        default_max_lifetime=settings.federation_max_lifetime,
        leeway=settings.assertion_leeway,
        cache_seconds=settings.cache_seconds,
        keys_max_age=settings.jwks_uri_cache_seconds,
        allow_insecure=settings.allow_insecure_jwks_uri,
    )
    assertions = AssertionVerifier(
        issuer=issuer,
        token_endpoint=settings.endpoint("/token"),
        box=SecretBox(key),
        replay=replay,
        remote=RemoteKeySets(
            cache_seconds=settings.jwks_uri_cache_seconds,
            allow_insecure=settings.allow_insecure_jwks_uri,
        ),
        max_lifetime=settings.assertion_max_lifetime,
        leeway=settings.assertion_leeway,
    )
    mtls = MutualTLS(
        ClientCAs.from_file(settings.tls_client_ca) if settings.tls_client_ca else None,
        bind_tokens=settings.tls_bind_tokens,
    )
    return ServerContext(
        settings=settings,
        issuer=issuer,
        store=store,
        keys=keys,
        hasher=hasher,
        clients=ClientDirectory(
            store,
            hasher,
            cache_seconds=settings.cache_seconds,
            assertions=assertions,
            federation=federation,
            mtls=mtls,
        ),
        limiter=FailureLimiter(
            window=settings.failure_window,
            max_per_address=_failures_per_process(settings, redis_client is not None),
            redis=redis_client,
        ),
        revocations=RevocationList(store, redis_client),
        redis=redis_client,
        revocation_list=RevocationPublisher(store, keys, issuer=issuer, redis=redis_client),
        assertions=assertions,
        dpop=DPoPVerifier(
            token_endpoint=settings.endpoint("/token"),
            replay=AssertionReplayCache(store, redis_client, prefix="authkestra:dpop:"),
            nonces=DPoPNonces(key, window=settings.dpop_nonce_window),
            require_nonce=settings.dpop_require_nonce,
            max_age=settings.dpop_proof_max_age,
            max_future=settings.dpop_proof_max_future,
        ),
        mtls=mtls,
    )
