"""Sending one protocol request over httpx, sync or async, with its limits enforced."""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import anyio
import httpx

from .._protocol.actions import HttpRequest, HttpResponse
from .._protocol.redact import clean_text
from ..errors import AuthError, NetworkError

__all__ = ["AsyncTransport", "SyncTransport", "network_error"]


def _is_certificate_failure(exc: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLCertVerificationError):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def network_error(exc: httpx.HTTPError | TimeoutError, url: str) -> NetworkError:
    """The :class:`NetworkError` for an httpx failure (to be raised ``from exc``)."""
    if isinstance(exc, (httpx.TimeoutException, TimeoutError)):
        return NetworkError(f"timed out talking to {url}")
    if _is_certificate_failure(exc):
        return NetworkError(
            f"TLS certificate of {url} is not trusted ({clean_text(str(exc), 160)}); pass an"
            " httpx client with the right CA bundle (verify=...) if the server uses a private CA",
            retryable=False,
        )
    if isinstance(exc, httpx.ConnectError):
        return NetworkError(f"could not connect to {url} ({clean_text(str(exc), 160)})")
    if isinstance(exc, httpx.TransportError):
        kind = type(exc).__name__
        return NetworkError(f"connection to {url} failed ({kind}: {clean_text(str(exc), 160)})")
    return NetworkError(f"request to {url} failed ({type(exc).__name__})", retryable=False)


class _Limits:
    """The per-request timeout and the overall deadline, shared by both transports."""

    def __init__(self, timeout: httpx.Timeout, clock: Callable[[], float]) -> None:
        self.timeout = timeout
        self.clock = clock

    def for_request(self, request: HttpRequest) -> httpx.Timeout:
        """The configured timeouts, none longer than what is left until the deadline."""
        remaining = request.deadline - self.clock()
        if remaining <= 0:
            raise NetworkError(f"timed out before sending to {request.url}")

        def cap(value: float | None) -> float:
            return remaining if value is None else min(value, remaining)

        return httpx.Timeout(
            connect=cap(self.timeout.connect),
            read=cap(self.timeout.read),
            write=cap(self.timeout.write),
            pool=cap(self.timeout.pool),
        )

    def check(self, request: HttpRequest) -> None:
        # A server that drips its body a byte at a time never trips the read timeout.
        if self.clock() > request.deadline:
            raise NetworkError(f"timed out reading the answer of {request.url}")


@contextmanager
def _mapped_errors(url: str) -> Iterator[None]:
    try:
        yield
    except AuthError:
        raise
    except (httpx.HTTPError, TimeoutError) as exc:
        raise network_error(exc, url) from exc


def _build(
    client: httpx.Client | httpx.AsyncClient, request: HttpRequest, timeout: httpx.Timeout
) -> httpx.Request:
    headers = dict(request.headers)
    # Token answers are small; compressed ones only add a decompression-bomb risk.
    headers.setdefault("Accept-Encoding", "identity")
    return client.build_request(
        request.method, request.url, headers=headers, content=request.body, timeout=timeout
    )


class _Body:
    """Collects at most ``limit`` bytes of a body."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.parts: list[bytes] = []
        self.size = 0
        self.truncated = False

    def add(self, chunk: bytes) -> bool:
        """Add a chunk; False once the limit is passed (stop reading)."""
        room = self.limit - self.size
        if len(chunk) > room:
            self.parts.append(chunk[:room])
            self.size = self.limit
            self.truncated = True
            return False
        self.parts.append(chunk)
        self.size += len(chunk)
        return True

    def response(self, raw: httpx.Response) -> HttpResponse:
        return HttpResponse(
            status_code=raw.status_code,
            headers={k.lower(): v for k, v in raw.headers.items()},
            body=b"".join(self.parts),
            truncated=self.truncated,
        )


class SyncTransport:
    """Sends protocol requests with an ``httpx.Client``."""

    def __init__(self, timeout: httpx.Timeout, clock: Callable[[], float]) -> None:
        self.limits = _Limits(timeout, clock)

    def send(self, client: httpx.Client, request: HttpRequest) -> HttpResponse:
        with _mapped_errors(request.url):
            raw = client.send(
                _build(client, request, self.limits.for_request(request)),
                stream=True,
                follow_redirects=False,
            )
            try:
                body = _Body(request.max_body)
                for chunk in raw.iter_bytes():
                    self.limits.check(request)
                    if not body.add(chunk):
                        break
                return body.response(raw)
            finally:
                raw.close()


class AsyncTransport:
    """Sends protocol requests with an ``httpx.AsyncClient``."""

    def __init__(self, timeout: httpx.Timeout, clock: Callable[[], float]) -> None:
        self.limits = _Limits(timeout, clock)

    async def send(self, client: httpx.AsyncClient, request: HttpRequest) -> HttpResponse:
        with _mapped_errors(request.url):
            timeout = self.limits.for_request(request)
            with anyio.fail_after(max(0.0, request.deadline - self.limits.clock())):
                raw = await client.send(
                    _build(client, request, timeout), stream=True, follow_redirects=False
                )
                try:
                    body = _Body(request.max_body)
                    async for chunk in raw.aiter_bytes():
                        self.limits.check(request)
                        if not body.add(chunk):
                            break
                    return body.response(raw)
                finally:
                    await raw.aclose()
