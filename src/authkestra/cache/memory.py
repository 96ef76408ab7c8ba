"""In-process token cache (the default)."""

from __future__ import annotations

import threading
import time

from .base import CachedToken, TokenCache

__all__ = ["MemoryCache"]


class MemoryCache(TokenCache):
    """Tokens in a dict, for the life of the process.

    Each flow has one of its own by default; pass one instance to several flows
    with the same client to let them share tokens.
    """

    blocking = False

    def __init__(self, max_entries: int = 1024) -> None:
        self._records: dict[str, CachedToken] = {}
        self._lock = threading.Lock()
        self.max_entries = max_entries

    def load(self, key: str) -> CachedToken | None:
        record = self._records.get(key)
        if record is not None and record.expires_at <= time.time():
            self.delete(key)
            return None
        return record

    def save(self, key: str, record: CachedToken) -> None:
        with self._lock:
            if key not in self._records and len(self._records) >= self.max_entries:
                # Bounded: evict the entry that expires first.
                oldest = min(self._records, key=lambda k: self._records[k].expires_at)
                del self._records[oldest]
            self._records[key] = record

    def delete(self, key: str) -> None:
        with self._lock:
            self._records.pop(key, None)

    def __len__(self) -> int:
        return len(self._records)
