"""A token cache in Redis, shared by a fleet: one token per key for all its processes."""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from .base import CachedToken, TokenCache

if TYPE_CHECKING:
    import redis as redis_py

__all__ = ["RedisCache"]

# Delete the lock only if we still own it: another holder may have taken it after ours expired.
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


class RedisCache(TokenCache):
    """Tokens in Redis (redis-py), with a lock so the fleet fetches each new token once.

    ``RedisCache("redis://cache:6379/0")`` or ``RedisCache(redis.Redis(...))``.
    Keys are ``{prefix}token:{key}`` holding the record until it expires, and
    ``{prefix}lock:{key}`` for the fetch lock (``SET NX PX`` with a random owner
    token, released only by its owner). Records hold access tokens: use Redis
    ACLs and TLS (``rediss://``) as you would for any credential store.

    When Redis is down or slow, calls fail fast (1 s timeouts by default) and the
    flow fetches tokens itself: the cache never fails a caller.
    """

    def __init__(
        self,
        url_or_client: str | redis_py.Redis,
        *,
        prefix: str = "authkestra:",
        timeout: float = 1.0,
    ) -> None:
        try:
            import redis as redis_py
        except ImportError:  # pragma: no cover - depends on the install
            raise ConfigError(
                "RedisCache needs redis-py: pip install 'authkestra[redis]'"
            ) from None
        if isinstance(url_or_client, str):
            self.client: Any = redis_py.Redis.from_url(
                url_or_client,
                socket_connect_timeout=timeout,
                socket_timeout=timeout,
                retry_on_timeout=False,
            )
        else:
            self.client = url_or_client
        self.prefix = prefix
        self._release = self.client.register_script(_RELEASE)

    def _token_key(self, key: str) -> str:
        return f"{self.prefix}token:{key}"

    def load(self, key: str) -> CachedToken | None:
        return CachedToken.parse_alive(self.client.get(self._token_key(key)))

    def save(self, key: str, record: CachedToken) -> None:
        ttl_ms = int((record.expires_at - time.time()) * 1000)
        if ttl_ms > 0:
            self.client.set(self._token_key(key), record.to_json(), px=ttl_ms)

    def delete(self, key: str) -> None:
        self.client.delete(self._token_key(key))

    @contextlib.contextmanager
    def lock(self, key: str, ttl: float) -> Iterator[bool]:
        """``SET NX PX``: True for the one process that fetches; it expires after ``ttl``."""
        name = f"{self.prefix}lock:{key}"
        owner = secrets.token_hex(16)
        acquired = bool(self.client.set(name, owner, nx=True, px=max(1, int(ttl * 1000))))
        try:
            yield acquired
        finally:
            if acquired:
                with contextlib.suppress(Exception):  # expiry frees it anyway
                    self._release(keys=[name], args=[owner])

    def __repr__(self) -> str:
        return f"RedisCache(prefix={self.prefix!r})"
