"""Retries with exponential back-off and jitter, bounded by attempts and a deadline."""

from __future__ import annotations

import dataclasses
import logging
import random
from collections.abc import Callable
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

from ..errors import ConfigError, NetworkError
from .actions import HttpRequest, HttpResponse, Operation, Sleep

__all__ = ["RetryPolicy", "is_retryable_status", "parse_retry_after", "send_with_retries"]

logger = logging.getLogger("authkestra")


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """When and how long to retry a request that failed in a way that may pass.

    Network errors, 5xx and 429 are retried; other 4xx never are. The n-th
    retry waits a random time in ``[0, min(max_backoff, base_backoff * 2**(n-1))]``
    ("full jitter"), or the server's ``Retry-After`` when it sends one, capped
    at ``max_retry_after``. No retry starts past ``total_timeout`` seconds after
    the first attempt, and each attempt is cut off at that deadline.

    ``RetryPolicy(max_attempts=1)`` turns retries off.
    """

    max_attempts: int = 3
    base_backoff: float = 0.5
    max_backoff: float = 8.0
    max_retry_after: float = 30.0
    total_timeout: float = 30.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigError("RetryPolicy.max_attempts must be at least 1")
        for name in ("base_backoff", "max_backoff", "max_retry_after", "total_timeout"):
            value = getattr(self, name)
            if not value >= 0:
                raise ConfigError(f"RetryPolicy.{name} must be a non-negative number")

    def backoff(self, retry_number: int, rng: Callable[[], float] = random.random) -> float:
        """The jittered wait before retry number ``retry_number`` (1-based)."""
        ceiling = min(self.max_backoff, self.base_backoff * (2 ** (retry_number - 1)))
        return float(ceiling * rng())


def is_retryable_status(status_code: int) -> bool:
    """5xx and 429 may pass on their own; other statuses will not."""
    return status_code == 429 or 500 <= status_code <= 599


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP date; None if absent or bad."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(min(int(value), 10**9))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    now = now or datetime.now(timezone.utc)
    return max(0.0, (when - now).total_seconds())


def send_with_retries(
    make_request: Callable[[float], HttpRequest],
    policy: RetryPolicy,
    clock: Callable[[], float],
    *,
    rng: Callable[[], float] = random.random,
    what: str = "request",
) -> Operation[HttpResponse]:
    """Send ``make_request(deadline)`` until it gets a final answer.

    Returns the last response, which may itself be a failure (a 5xx or 429 after
    the last attempt) for the caller to interpret; raises the last
    :class:`NetworkError` when no response came.
    """
    deadline = clock() + policy.total_timeout
    attempt = 0
    while True:
        attempt += 1
        delay: float | None
        try:
            response: HttpResponse = yield make_request(deadline)
        except NetworkError as exc:
            if not exc.retryable or attempt >= policy.max_attempts:
                raise
            delay = policy.backoff(attempt, rng)
            reason = str(exc)
            if clock() + delay >= deadline:
                raise
        else:
            if not is_retryable_status(response.status_code) or attempt >= policy.max_attempts:
                return response
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            if retry_after is not None:
                if retry_after > policy.max_retry_after:
                    return response  # the server asks for longer than we wait: report it
                delay = retry_after
            else:
                delay = policy.backoff(attempt, rng)
            reason = f"HTTP {response.status_code}"
            if clock() + delay >= deadline:
                return response
        logger.info(
            "authkestra: %s failed (%s); retry %d of %d in %.2fs",
            what,
            reason,
            attempt,
            policy.max_attempts - 1,
            delay,
        )
        yield Sleep(delay)
