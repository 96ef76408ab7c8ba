"""Tokens kept per process: served from memory, fetched once, renewed ahead of expiry.

Every ``get_token`` call lands here. The hot path is a dict lookup and a clock
read. Everything else happens once per token lifetime:

- **one fetch in flight** per key, **refresh ahead** (past 75-85% of the
  lifetime a token is still served while one background fetch replaces it) and
  **back-off** after a failure (a growing, jittered interval: 1 s doubling to
  60 s): the refresh-ahead cache of :mod:`authkestra._io.refresh`;
- **shared backends**: before asking the server, the leader looks in the
  :class:`~authkestra.cache.TokenCache` and, if other processes share it, takes
  its lock so one process in the fleet fetches and the others adopt its token.
  A backend that fails is logged and bypassed, never raised.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from collections.abc import Callable
from typing import Any

from .._clock import Clock
from .._io.drivers import AsyncDriver, SyncDriver
from .._io.refresh import Entry, RefreshingCache, Slot
from .._protocol.actions import Call, Operation, Sleep
from .._protocol.lifetime import plan_lifetime
from .._protocol.token_request import TokenRequestSpec
from ..cache.base import CachedToken, TokenCache
from ..errors import AuthError
from ..token import Token
from .events import TokenEvent, TokenEventHook, TokenEventKind

__all__ = ["TokenManager", "cache_key"]

logger = logging.getLogger("authkestra")

#: Back-off after failed fetches: 1 s, doubling, at most 60 s, with jitter.
FAILURE_BACKOFF_BASE = 1.0
FAILURE_BACKOFF_MAX = 60.0


def cache_key(where: str, spec: TokenRequestSpec, *, dpop_jkt: str | None = None) -> str:
    """A stable hash of everything that identifies a token; never the secret.

    ``dpop_jkt``: the thumbprint of the DPoP key the flow proves possession of;
    a token bound to one key is useless with another, so it is part of the key.
    """
    parts: list[object] = [
        where,
        spec.client_id,
        spec.auth_method.value,
        sorted(spec.scopes),
        spec.audience,
        sorted(spec.resources),
        list(spec.extra_params),
    ]
    if spec.grant_type != "client_credentials":
        # A token exchanged for a subject token is that subject's: keyed by it (hashed).
        parts.append([spec.grant_type, list(spec.grant_fields)])
    if dpop_jkt is not None:
        parts.append(["dpop", dpop_jkt])
    material = json.dumps(parts, separators=(",", ":"))
    return hashlib.sha256(material.encode()).hexdigest()


class TokenEntry(Entry[Token]):
    """A usable token: its deadlines on the monotonic clock, its record and where it came from."""

    __slots__ = ("record", "source")

    def __init__(self, record: CachedToken, source: str, clock: Clock) -> None:
        # Store times are wall-clock (shared across machines); convert once to monotonic.
        offset = clock.monotonic() - clock.now().timestamp()
        super().__init__(record.token, record.refresh_after + offset, record.expires_at + offset)
        self.record = record
        self.source = source


class TokenManager:
    """Serves tokens for one flow. Internal: the flow is the public face."""

    def __init__(
        self,
        *,
        fetch: Callable[[TokenRequestSpec], Operation[Token]],
        sync_driver: SyncDriver,
        async_driver: AsyncDriver,
        cache: TokenCache,
        clock: Clock,
        default_ttl: float,
        wait_timeout: float,
        client_id: str,
        on_event: TokenEventHook | None,
        rng: Callable[[], float] = random.random,
        max_tokens: int | None = None,
    ) -> None:
        """``max_tokens``: keep at most this many tokens (the oldest unused go first) --
        for tokens keyed by something callers bring (exchanged subject tokens)."""
        self._fetch = fetch
        self.cache = cache
        self.clock = clock
        self.default_ttl = default_ttl
        self.wait_timeout = wait_timeout
        self.client_id = client_id
        self.on_event = on_event
        self.rng = rng
        self.max_tokens = max_tokens
        #: The request behind each key (a key is a hash of it).
        self._specs: dict[str, TokenRequestSpec] = {}
        #: An access token reported bad (a 401), per key: never adopted again from a backend.
        self._stale: dict[str, str] = {}
        self.tokens: RefreshingCache[str, Token] = RefreshingCache(
            fetch=self._acquire,
            sync_driver=sync_driver,
            async_driver=async_driver,
            clock=clock.monotonic,
            wait_timeout=wait_timeout,
            # A leader may wait for another process's lock, then fetch: twice a fetch at most.
            max_flight=2 * wait_timeout,
            backoff=self._backoff,
            what="token request",
            max_slots=max_tokens,
            on_hit=self._hit if on_event is not None else None,
            on_miss=self._miss,
            on_obtained=self._obtained,
            on_failed=self._failed,
        )

        # What the flow calls on every request: the cache's own methods, no layer between.
        self.cached = self.tokens.cached
        self.get_sync = self.tokens.get_sync
        self.get_async = self.tokens.get_async

    # -- what the flow calls -----------------------------------------------------------

    def register(self, key: str, spec: TokenRequestSpec) -> None:
        """Make ``key`` stand for the token ``spec`` asks for (before any call with it)."""
        specs = self._specs
        if self.max_tokens is not None and key not in specs and len(specs) >= 4 * self.max_tokens:
            # Bounded: the oldest quarter goes (their tokens were evicted long before).
            for old in list(specs)[: self.max_tokens]:
                del specs[old]
        specs.setdefault(key, spec)

    def register_slot(self, key: str) -> Slot[Token]:
        """The state of a registered ``key``, for a holder that reads its entry directly."""
        return self.tokens.slot(key)

    def invalidate(self, key: str, token: Token | None) -> bool:
        """Drop the token for ``key`` (only if it is ``token``, when given); True if dropped."""
        wanted = token.access_token if token is not None else None
        dropped = self.tokens.invalidate(
            key, None if wanted is None else lambda held: held.access_token == wanted
        )
        if dropped is None:
            return False
        self._stale[key] = dropped.access_token
        return True

    # -- fetching (sans-I/O) -------------------------------------------------------------

    def _acquire(self, key: str, force: bool) -> Operation[Entry[Token]]:
        """Find a usable token in the backend, or fetch one (once for the fleet) and store it."""
        spec = self._specs[key]
        cache = self.cache
        started_wall = self.clock.now().timestamp()
        stale = self._stale.get(key)

        def usable(record: CachedToken | None) -> bool:
            if record is None or record.token.access_token == stale:
                return False
            if record.obtained_at > started_wall:
                return True  # written after we asked: the freshest there is
            return not force and self.clock.now().timestamp() < record.refresh_after

        def load() -> CachedToken | None:
            return cache.load(key)

        record = yield from self._cache_call(load, "read")
        if usable(record):
            assert record is not None
            return TokenEntry(record, "cache", self.clock)

        deadline = self.clock.monotonic() + self.wait_timeout
        pause = 0.02
        while True:
            lock: Any = cache.lock(key, self.wait_timeout)
            held = yield from self._cache_call(lock.__enter__, "lock")
            if held is None:
                lock = None  # the backend failed: fetch without its lock
            if held is None or held:
                try:
                    if lock is not None:
                        record = yield from self._cache_call(load, "read")
                        if usable(record):
                            assert record is not None
                            return TokenEntry(record, "cache", self.clock)
                    return (yield from self._fetch_and_store(key, spec))
                finally:
                    if lock is not None:
                        # Released inline, so it is released even if this operation is abandoned.
                        try:
                            lock.__exit__(None, None, None)
                        except Exception as exc:
                            logger.warning(
                                "authkestra: token cache lock release failed (%s)",
                                type(exc).__name__,
                            )
            # Another process is fetching: wait for its token to appear in the backend.
            yield Sleep(pause)
            pause = min(pause * 2, 0.5)
            record = yield from self._cache_call(load, "read")
            if usable(record):
                assert record is not None
                return TokenEntry(record, "cache", self.clock)
            if self.clock.monotonic() >= deadline:
                logger.warning(
                    "authkestra: no token from the process holding the cache lock; fetching"
                )
                return (yield from self._fetch_and_store(key, spec))

    def _fetch_and_store(self, key: str, spec: TokenRequestSpec) -> Operation[Entry[Token]]:
        token = yield from self._fetch(spec)
        record = plan_lifetime(
            token, self.clock.now().timestamp(), default_ttl=self.default_ttl, rng=self.rng
        )
        yield from self._cache_call(lambda: self.cache.save(key, record), "write")
        return TokenEntry(record, "network", self.clock)

    def _cache_call(self, func: Callable[[], Any], what: str) -> Operation[Any]:
        """Run a backend call; on failure log it and answer None (the caller falls back)."""
        try:
            return (yield Call(func, blocking=self.cache.blocking))
        except Exception as exc:
            logger.warning(
                "authkestra: token cache %s failed (%s: %s); continuing without it",
                what,
                type(exc).__name__,
                str(exc)[:200],
            )
            return None

    def _backoff(self, failures: int, _error: AuthError) -> float:
        ceiling = min(FAILURE_BACKOFF_MAX, FAILURE_BACKOFF_BASE * 2 ** (failures - 1))
        return float(ceiling * (0.5 + 0.5 * self.rng()))

    # -- what happened -----------------------------------------------------------------

    def _hit(self, key: str, token: Token) -> None:
        self._emit(TokenEventKind.CACHE_HIT, key, token)

    def _miss(self, key: str) -> None:
        self._emit(TokenEventKind.CACHE_MISS, key)

    def _obtained(self, key: str, entry: Entry[Token], previous: Entry[Token] | None) -> None:
        assert isinstance(entry, TokenEntry)
        kind = TokenEventKind.REFRESHED if previous is not None else TokenEventKind.ACQUIRED
        logger.debug(
            "authkestra: token %s for client %r from %s (usable for %.0fs)",
            kind.value,
            self.client_id,
            entry.source,
            entry.usable_until - self.clock.monotonic(),
        )
        self._emit(kind, key, entry.value, source=entry.source)

    def _failed(self, key: str, error: AuthError, background: bool) -> None:
        kind = TokenEventKind.REFRESH_FAILED if background else TokenEventKind.FETCH_FAILED
        log = logger.warning if background else logger.info
        log(
            "authkestra: token %s for client %r: %s",
            kind.value.replace("_", " "),
            self.client_id,
            error,
        )
        self._emit(kind, key, error=error)

    def _emit(
        self,
        kind: TokenEventKind,
        key: str,
        token: Token | None = None,
        *,
        source: str | None = None,
        error: AuthError | None = None,
    ) -> None:
        hook = self.on_event
        if hook is None:
            return
        spec = self._specs.get(key)
        event = TokenEvent(
            kind=kind,
            client_id=self.client_id,
            scopes=spec.scopes if spec is not None else (),
            cache_key=key,
            expires_at=token.expires_at if token is not None else None,
            source=source,
            error=error,
        )
        try:
            hook(event)
        except Exception:
            logger.exception("authkestra: the on_event hook raised; ignored")
