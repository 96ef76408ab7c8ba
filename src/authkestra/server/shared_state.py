"""State that several instances must agree on: failure counts, revoked tokens, used assertions.

Without Redis, failure counts are per instance (in memory) and revocations
live in the store. With ``--redis``, both live in Redis, so two instances
behind one load balancer count failures together and see revocations at once.
The ``jti`` of used client assertions live in the store (an INSERT on a primary
key), or in Redis (``SET NX``) when it is configured: one instance's first use
is every instance's replay.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from time import monotonic as _monotonic
from typing import Any
from urllib.parse import quote

from .store import Store

__all__ = ["AssertionReplayCache", "FailureLimiter", "RevocationList"]

logger = logging.getLogger("authkestra.server")


class FailureLimiter:
    """Fixed-window counts of failed client authentications per source address.

    Per address only, never per client id: counting by client id would let anyone
    lock a client out by sending wrong secrets in its name. Secrets are
    server-generated and 256-bit, so the limit is not what stops guessing; it
    keeps one source from spending the server's CPU on failures.
    """

    def __init__(
        self,
        *,
        window: int,
        max_per_address: int,
        redis: Any | None = None,
        prefix: str = "authkestra:fail:",
    ) -> None:
        self.window = window
        self.max_per_address = max_per_address
        self.redis = redis
        self.prefix = prefix
        self._counts: dict[str, tuple[int, int]] = {}  # key -> (window number, count)
        self._lock = threading.Lock()

    def _key(self, address: str) -> tuple[str, int, float]:
        now = time.time()
        window = int(now // self.window)
        retry_after = (window + 1) * self.window - now
        return f"{self.prefix}addr:{window}:{address}", window, retry_after

    def blocked(self, address: str) -> float | None:
        """Seconds until ``address`` may try again, or None if it may try now."""
        key, window, retry_after = self._key(address)
        if self._count(key, window) > self.max_per_address:
            return max(1.0, retry_after)
        return None

    def record_failure(self, address: str) -> None:
        key, window, _ = self._key(address)
        if self.redis is not None:
            pipe = self.redis.pipeline()
            pipe.incr(key)
            pipe.expire(key, self.window * 2)
            pipe.execute()
        else:
            with self._lock:
                seen = self._counts.get(key)
                self._counts[key] = (window, (seen[1] if seen and seen[0] == window else 0) + 1)
                if len(self._counts) > 100_000:
                    self._prune(window)

    def _count(self, key: str, window: int) -> int:
        if self.redis is not None:
            value = self.redis.get(key)
            return int(value) if value else 0
        seen = self._counts.get(key)
        return seen[1] if seen and seen[0] == window else 0

    def _prune(self, window: int) -> None:
        self._counts = {k: v for k, v in self._counts.items() if v[0] >= window}


class RevocationList:
    """Revoked token ids until their expiry: in Redis when configured, else in the store."""

    def __init__(
        self, store: Store, redis: Any | None = None, prefix: str = "authkestra:revoked:"
    ) -> None:
        self.store = store
        self.redis = redis
        self.prefix = prefix
        self._loaded_marker = prefix + "__loaded__"

    def _refill(self) -> None:
        assert self.redis is not None
        now = datetime.now(timezone.utc)
        pipe = self.redis.pipeline()
        for jti, expires_at in self.store.revocations():
            ttl = int((expires_at - now).total_seconds()) + 1
            if ttl > 0:
                pipe.set(self.prefix + jti, b"1", ex=ttl)
        pipe.set(self._loaded_marker, b"1")
        pipe.execute()

    def revoke(self, jti: str, expires_at: datetime) -> None:
        ttl = int((expires_at - datetime.now(timezone.utc)).total_seconds()) + 1
        if ttl <= 0:
            return  # already expired: nothing to remember
        if self.redis is not None:
            self.redis.set(self.prefix + jti, b"1", ex=ttl)
        # Also in the store: it outlives a Redis restart.
        self.store.revoke(jti, expires_at)

    def is_revoked(self, jti: str) -> bool:
        if self.redis is not None:
            try:
                pipe = self.redis.pipeline()
                pipe.exists(self._loaded_marker)
                pipe.exists(self.prefix + jti)
                loaded, revoked = pipe.execute()
                if loaded:
                    return bool(revoked)
                # Redis came back empty (restart, flush): refill it from the store, which
                # keeps every revocation, before trusting it again.
                self._refill()
                return self.store.is_revoked(jti)
            except Exception as exc:  # Redis down: the store still knows
                logger.warning(
                    "authkestra server: Redis failed (%s); using the store", type(exc).__name__
                )
        return self.store.is_revoked(jti)


class AssertionReplayCache:
    """Each client assertion ``jti`` once per client, remembered until the assertion expires.

    With Redis: ``SET authkestra:jti:<client>:<jti> NX PX <ms to expiry>`` -- atomic,
    and gone by itself when the assertion could not be accepted any more. A Redis
    failure is not papered over with the store (an instance using the store would not
    see what the others put in Redis): it fails the request. Without Redis: an INSERT
    on the store's (client_id, jti) primary key; expired rows are purged now and then.
    """

    def __init__(
        self,
        store: Store,
        redis: Any | None = None,
        *,
        prefix: str = "authkestra:jti:",
        purge_every: float = 60.0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.store = store
        self.redis = redis
        self.prefix = prefix
        self.purge_every = purge_every
        self.clock = clock
        self._last_purge = _monotonic()
        self._lock = threading.Lock()

    def key(self, client_id: str, jti: str) -> str:
        # The client id is quoted so that no ":" in it can make two (client, jti) pairs collide.
        return f"{self.prefix}{quote(client_id, safe='')}:{jti}"

    def first_use(self, client_id: str, jti: str, expires_at: float) -> bool:
        """True the first time ``jti`` is seen for ``client_id`` (``expires_at``: epoch seconds)."""
        remaining = expires_at - (self.clock or time.time)()
        if remaining <= 0:
            return False  # past its time: could not be accepted, so never a first use
        if self.redis is not None:
            stored = self.redis.set(
                self.key(client_id, jti), b"1", nx=True, px=max(1, int(remaining * 1000) + 1)
            )
            return bool(stored)
        self._maybe_purge()
        return self.store.use_assertion(
            client_id, jti, datetime.fromtimestamp(expires_at, timezone.utc)
        )

    def _maybe_purge(self) -> None:
        now = _monotonic()
        if now - self._last_purge < self.purge_every:
            return
        with self._lock:
            if now - self._last_purge < self.purge_every:
                return
            self._last_purge = now
        try:
            self.store.purge_used_assertions()
        except Exception as exc:  # housekeeping: never fails a request
            logger.warning(
                "authkestra server: purging used assertions failed (%s)", type(exc).__name__
            )
