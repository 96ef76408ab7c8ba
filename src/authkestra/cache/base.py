"""The token cache interface, and the record a cache stores.

A flow always keeps its tokens in memory, per process, and serves every call
from there. A *cache backend* is where the flow looks before it asks the
authorization server, and where it puts what it got: shared by several flows
(:class:`~authkestra.cache.MemoryCache`), several processes on one machine
(:class:`~authkestra.cache.FileCache`) or a whole fleet
(:class:`~authkestra.cache.RedisCache`). The flow calls the backend only when
it needs a new token -- once per token lifetime -- never on the hot path.

To plug in another store, subclass :class:`TokenCache` and implement
:meth:`~TokenCache.load`, :meth:`~TokenCache.save` and :meth:`~TokenCache.delete`;
implement :meth:`~TokenCache.lock` too if several processes share the store, so
that one of them fetches each new token and the others wait for it. Methods are
blocking; async flows call them in a worker thread when ``blocking`` is True.
A backend that fails (raises) never fails the caller: the flow logs a warning
and fetches the token itself.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

from ..token import Token

__all__ = ["CachedToken", "TokenCache"]


@dataclasses.dataclass(frozen=True, repr=False)
class CachedToken:
    """A token with the times that decide its use, as wall-clock UNIX seconds.

    ``refresh_after`` is when the flow that obtained it planned to renew it
    (around 80% of its lifetime); ``expires_at`` when it stops being usable.
    """

    token: Token
    obtained_at: float
    refresh_after: float
    expires_at: float

    def to_json(self) -> str:
        """Serialise (the access token included: stores must be protected)."""
        t = self.token
        return json.dumps(
            {
                "v": 1,
                "access_token": t.access_token,
                "token_type": t.token_type,
                "expires_in": t.expires_in,
                "token_expires_at": t.expires_at.timestamp() if t.expires_at else None,
                "scope": t.scope,
                "raw": dict(t.raw),
                "obtained_at": self.obtained_at,
                "refresh_after": self.refresh_after,
                "expires_at": self.expires_at,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, data: str | bytes) -> CachedToken:
        """Parse what :meth:`to_json` wrote; ValueError on anything else."""
        try:
            obj: Any = json.loads(data)
            if not isinstance(obj, dict) or obj.get("v") != 1:
                raise ValueError("not a cached token record")
            token_expiry = obj["token_expires_at"]
            token = Token(
                access_token=_str(obj["access_token"]),
                token_type=_str(obj["token_type"]),
                expires_in=obj["expires_in"],
                expires_at=(
                    datetime.fromtimestamp(float(token_expiry), timezone.utc)
                    if token_expiry is not None
                    else None
                ),
                scope=obj["scope"],
                raw=obj["raw"] if isinstance(obj["raw"], dict) else {},
            )
            return cls(
                token=token,
                obtained_at=float(obj["obtained_at"]),
                refresh_after=float(obj["refresh_after"]),
                expires_at=float(obj["expires_at"]),
            )
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            raise ValueError(f"corrupt cached token record ({type(exc).__name__})") from None

    @classmethod
    def parse_alive(cls, data: object, now: float | None = None) -> CachedToken | None:
        """The record in ``data`` if it is one and has not expired; None for anything else.

        What a backend reads may be corrupt or planted: it is never trusted more.
        """
        if not isinstance(data, (str, bytes)):
            return None
        try:
            record = cls.from_json(data)
        except ValueError:
            return None
        return record if record.expires_at > (time.time() if now is None else now) else None

    def __repr__(self) -> str:
        return f"CachedToken({self.token!r}, expires_at={self.expires_at:.0f})"


def _str(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("expected a non-empty string")
    return value


class TokenCache:
    """Base class of token cache backends. See the module docstring for the contract."""

    #: Whether the methods block on I/O (async flows then call them in a thread).
    blocking: bool = True

    def load(self, key: str) -> CachedToken | None:
        """The record stored under ``key``, or None."""
        raise NotImplementedError

    def save(self, key: str, record: CachedToken) -> None:
        """Store ``record`` under ``key`` until ``record.expires_at``."""
        raise NotImplementedError

    def delete(self, key: str) -> None:
        """Forget ``key`` (a no-op when absent)."""
        raise NotImplementedError

    @contextlib.contextmanager
    def lock(self, key: str, ttl: float) -> Iterator[bool]:
        """Hold the right to fetch a new token for ``key``, for at most ``ttl`` seconds.

        Yields True when this caller holds it, False when another process does
        (the caller then waits for that process's token to appear). The default
        has no cross-process lock and always yields True.
        """
        yield True
