"""What a protocol generator asks its driver to do, and what the driver answers."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Generator, Mapping
from typing import Any, TypeVar

__all__ = ["Action", "Call", "HttpRequest", "HttpResponse", "Operation", "ReadSecret", "Sleep"]

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class HttpRequest:
    """Send this request; the driver answers with an :class:`HttpResponse`.

    On a transport failure the driver throws a ``NetworkError`` into the
    generator instead. ``deadline`` is the monotonic time by which the whole
    exchange, body included, must be over; ``max_body`` caps the bytes read.
    """

    method: str
    url: str
    headers: tuple[tuple[str, str], ...]
    body: bytes | None
    deadline: float
    max_body: int

    def __repr__(self) -> str:
        # Headers and body may carry credentials: never show them.
        return f"HttpRequest({self.method} {self.url})"


@dataclasses.dataclass(frozen=True)
class HttpResponse:
    """What came back: status, lower-cased headers, and at most ``max_body`` bytes.

    ``truncated`` is True when the body was longer than the cap.
    """

    status_code: int
    headers: Mapping[str, str]
    body: bytes
    truncated: bool = False

    def __repr__(self) -> str:
        return f"HttpResponse({self.status_code}, {len(self.body)} bytes)"


@dataclasses.dataclass(frozen=True)
class Sleep:
    """Wait this many seconds (a retry back-off); the driver answers None."""

    seconds: float


@dataclasses.dataclass(frozen=True)
class ReadSecret:
    """Read the client secret from its source; the driver answers the secret text."""


@dataclasses.dataclass(frozen=True)
class Call:
    """Run ``func()`` (a token cache operation); the driver answers its result.

    An exception it raises is thrown into the operation. ``blocking`` calls run
    in a worker thread under the async driver, so they never stall the loop.
    """

    func: Callable[[], Any]
    blocking: bool = True


Action = HttpRequest | Sleep | ReadSecret | Call
#: A protocol operation: yields actions, receives their results, returns T.
Operation = Generator[Action, Any, T]
