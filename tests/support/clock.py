"""A clock the test moves by hand: monotonic and wall time advance together."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone


class FakeClock:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._mono = 1000.0
        self._wall = time.time()

    def monotonic(self) -> float:
        with self._lock:
            return self._mono

    def now(self) -> datetime:
        with self._lock:
            return datetime.fromtimestamp(self._wall, timezone.utc)

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._mono += seconds
            self._wall += seconds
