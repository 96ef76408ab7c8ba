"""A DPoP replay set shared through Redis, for an API served by several processes or machines.

Each accepted proof's key thumbprint and ``jti`` go into Redis with ``SET NX``
and an expiry at the end of the proof's acceptance window: the first process
to see a proof takes it, every other one (and the same one, later) refuses it.
If Redis cannot be reached the proof is not accepted -- a replay check that did
not happen is no check -- and the request gets a 503 (``NetworkError``).
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

from ..errors import ConfigError, NetworkError

__all__ = ["RedisReplayCache"]


class RedisReplayCache:
    """:class:`~authkestra.resource.dpop.ReplayStore` in Redis (redis-py).

    ::

        checker = DPoPChecker(replay=RedisReplayCache("redis://cache:6379/0"))
        app = BearerTokenMiddleware(app, verifier, dpop=checker)

    ``redis``: a URL or a ``redis.Redis`` client (yours: you close it).
    """

    #: Each check is a network round trip: async integrations run it in a worker thread.
    blocking = True

    def __init__(self, redis: str | Any, *, prefix: str = "authkestra:api-dpop:") -> None:
        try:
            import redis as redis_py
        except ImportError:  # pragma: no cover - depends on the install
            raise ConfigError(
                "RedisReplayCache needs redis: pip install 'authkestra[redis]'"
            ) from None
        self._errors = (redis_py.RedisError, OSError)
        if isinstance(redis, str):
            self._client = redis_py.Redis.from_url(
                redis, socket_connect_timeout=2, socket_timeout=2
            )
        else:
            self._client = redis
        self.prefix = prefix

    def add(self, jti: str, *, now: float, expires_at: float) -> bool:
        """Take ``jti`` until ``expires_at``; False if some process took it already."""
        # Hashed: the key has a fixed size whatever a client puts in its jti.
        key = self.prefix + hashlib.sha256(jti.encode("utf-8", "surrogatepass")).hexdigest()
        ttl_ms = max(1, math.ceil((expires_at - now) * 1000))
        try:
            return bool(self._client.set(key, b"1", nx=True, px=ttl_ms))
        except self._errors:
            raise NetworkError(
                "the DPoP replay store (Redis) cannot be reached: the proof was not accepted"
            ) from None

    def __repr__(self) -> str:
        return f"RedisReplayCache(prefix={self.prefix!r})"
