"""The settings every protocol operation shares."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime

from .redact import Redactor
from .retry import RetryPolicy

__all__ = ["ProtocolContext"]


@dataclasses.dataclass(frozen=True)
class ProtocolContext:
    """How to send (retries, limits, identity) and how to tell the time.

    ``clock`` is monotonic seconds, for deadlines and back-off; ``wall_clock``
    stamps expiry dates. ``redact`` masks the secrets seen so far in any text
    that reaches a message.
    """

    policy: RetryPolicy
    clock: Callable[[], float]
    wall_clock: Callable[[], datetime]
    max_body: int
    user_agent: str
    redact: Redactor
    allow_insecure_http: bool = False
