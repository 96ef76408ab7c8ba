"""State that several instances must agree on: failed-login counts and revoked tokens.

Without Redis, failure counts are per instance (in memory) and revocations
live in the store. With ``--redis``, both live in Redis, so two instances
behind one load balancer count failures together and see revocations at once.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timezone
from typing import Any

from .store import Store

__all__ = ["FailureLimiter", "RevocationList"]

logger = logging.getLogger("authkestra.server")


class FailureLimiter:
    """Fixed-window counts of failed client authentications, per client id and per address."""

    def __init__(
        self,
        *,
        window: int,
        max_per_client: int,
        max_per_address: int,
        redis: Any | None = None,
        prefix: str = "authkestra:fail:",
    ) -> None:
        self.window = window
        self.limits = {"client": max_per_client, "addr": max_per_address}
        self.redis = redis
        self.prefix = prefix
        self._counts: dict[str, tuple[int, int]] = {}  # key -> (window number, count)
        self._lock = threading.Lock()

    def _key(self, kind: str, value: str) -> tuple[str, int, float]:
        now = time.time()
        window = int(now // self.window)
        retry_after = (window + 1) * self.window - now
        return f"{self.prefix}{kind}:{window}:{value}", window, retry_after

    def blocked(self, client_id: str | None, address: str) -> float | None:
        """Seconds until the caller may try again, or None if it may try now."""
        for kind, value in (("client", client_id), ("addr", address)):
            if value is None:
                continue
            key, window, retry_after = self._key(kind, value)
            if self._count(key, window) > self.limits[kind]:
                return max(1.0, retry_after)
        return None

    def record_failure(self, client_id: str | None, address: str) -> None:
        for kind, value in (("client", client_id), ("addr", address)):
            if value is None:
                continue
            key, window, _ = self._key(kind, value)
            if self.redis is not None:
                pipe = self.redis.pipeline()
                pipe.incr(key)
                pipe.expire(key, self.window * 2)
                pipe.execute()
            else:
                with self._lock:
                    seen = self._counts.get(key)
                    self._counts[key] = (window, (seen[1] if seen else 0) + 1)
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
