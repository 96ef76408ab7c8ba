"""Remembering verified tokens: a token presented again costs a dict lookup."""

from __future__ import annotations

import threading
from collections.abc import Callable

from .._clock import Clock
from .access_token import AccessToken

__all__ = ["VerifiedTokenCache"]


class VerifiedTokenCache:
    """Bounded map of token string -> AccessToken, each kept until its ``exp`` or ``max_age``.

    Only successes are remembered. Eviction is oldest-first once ``max_entries``
    is reached, so a flood of distinct valid tokens cannot grow memory.
    """

    def __init__(self, max_entries: int, max_age: float, clock: Clock) -> None:
        self.max_entries = max_entries
        self.max_age = max_age
        self.clock = clock
        self._entries: dict[str, tuple[AccessToken, float]] = {}
        self._lock = threading.Lock()

    def get(self, token: str) -> AccessToken | None:
        entry = self._entries.get(token)
        if entry is None:
            return None
        if self.clock.monotonic() >= entry[1]:
            with self._lock:
                self._entries.pop(token, None)
            return None
        return entry[0]

    def put(self, token: str, access: AccessToken) -> None:
        now_mono = self.clock.monotonic()
        lifetime = access.expires_at.timestamp() - self.clock.now().timestamp()
        until = now_mono + min(self.max_age, lifetime)
        if until <= now_mono or self.max_entries <= 0:
            return
        with self._lock:
            if token not in self._entries and len(self._entries) >= self.max_entries:
                del self._entries[next(iter(self._entries))]  # dicts keep insertion order
            self._entries[token] = (access, until)

    def drop(self, token: str) -> None:
        with self._lock:
            self._entries.pop(token, None)

    def drop_where(self, condition: Callable[[AccessToken], bool]) -> int:
        """Forget every token whose verified form meets ``condition``; how many."""
        with self._lock:
            doomed = [token for token, (access, _) in self._entries.items() if condition(access)]
            for token in doomed:
                del self._entries[token]
        return len(doomed)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
