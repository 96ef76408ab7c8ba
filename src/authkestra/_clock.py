"""Time, injected: flows read the clock through this, so tests control it exactly."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Protocol

__all__ = ["Clock", "SystemClock"]


class Clock(Protocol):
    """A source of time: monotonic seconds for intervals, wall-clock for expiry dates."""

    def monotonic(self) -> float: ...

    def now(self) -> datetime: ...


class SystemClock:
    """The real clock."""

    # The builtin itself, not a wrapper: this is read on every cached token lookup.
    monotonic = staticmethod(time.monotonic)

    def now(self) -> datetime:
        return datetime.now(timezone.utc)
