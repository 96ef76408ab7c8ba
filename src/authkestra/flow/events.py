"""What the flow reports about its tokens, for metrics and tracing."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable
from datetime import datetime

from ..errors import AuthError

__all__ = ["TokenEvent", "TokenEventHook", "TokenEventKind"]


class TokenEventKind(str, enum.Enum):
    """The kinds of :class:`TokenEvent`."""

    CACHE_HIT = "cache_hit"
    """A call was answered with the token in memory."""
    CACHE_MISS = "cache_miss"
    """A call found no usable token and waits for one."""
    ACQUIRED = "acquired"
    """A first token for this key was obtained (``source`` says from where)."""
    REFRESHED = "refreshed"
    """A token was replaced by a newer one."""
    REFRESH_FAILED = "refresh_failed"
    """A background renewal failed; the current token is still served."""
    FETCH_FAILED = "fetch_failed"
    """A fetch that callers were waiting for failed; they got ``error``."""


@dataclasses.dataclass(frozen=True)
class TokenEvent:
    """One thing that happened to a cached token. Never carries the token itself.

    ``cache_key`` identifies the token (a hash: no secret, no token);
    ``source`` is ``"network"`` or ``"cache"`` (a shared backend) for
    acquired/refreshed tokens.
    """

    kind: TokenEventKind
    client_id: str
    scopes: tuple[str, ...]
    cache_key: str
    expires_at: datetime | None = None
    source: str | None = None
    error: AuthError | None = None


#: A function called with every :class:`TokenEvent`; exceptions it raises are logged, not raised.
TokenEventHook = Callable[[TokenEvent], None]
