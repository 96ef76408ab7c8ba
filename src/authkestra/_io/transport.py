"""Sending one protocol request over httpx, sync or async, with its limits enforced."""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import threading
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


def _connect_reason(exc: BaseException) -> str:
    """Why a connection failed, the same words in sync and async code: the system's error
    (``[Errno 111] Connection refused``) under whatever the async stack wrapped it in
    (anyio's "All connection attempts failed")."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno is not None:
            reason = current.strerror or os.strerror(current.errno)
            return clean_text(f"[Errno {current.errno}] {reason}", 160)
        current = current.__cause__ or current.__context__
    return clean_text(str(exc), 160)


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
        return NetworkError(f"could not connect to {url} ({_connect_reason(exc)})")
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
    client: httpx.Client | httpx.AsyncClient,
    request: HttpRequest,
    timeout: httpx.Timeout,
    extensions: dict[str, object] | None = None,
) -> httpx.Request:
    headers = dict(request.headers)
    # Token answers are small; compressed ones only add a decompression-bomb risk.
    headers.setdefault("Accept-Encoding", "identity")
    return client.build_request(
        request.method,
        request.url,
        headers=headers,
        content=request.body,
        timeout=timeout,
        extensions=extensions,
    )


class _Watchdog:
    """Enforces the deadline on a blocking request, status line and headers included.

    httpx's timeouts are per read: a server that sends one byte per second never
    trips them. The watchdog learns the request's socket from httpcore's trace
    hook and shuts it down when the deadline passes, which wakes the blocked
    read at once. (A pooled connection reused by an injected client opens no
    socket, so for it only the per-read timeouts apply.)
    """

    def __init__(self, seconds: float) -> None:
        self.fired = False
        self._socket: socket.socket | None = None
        self._lock = threading.Lock()
        self._timer = threading.Timer(max(0.0, seconds), self._fire)
        self._timer.daemon = True

    def trace(self, event: str, info: dict[str, object]) -> None:
        if event == "connection.connect_tcp.complete":
            stream = info.get("return_value")
            get_extra_info = getattr(stream, "get_extra_info", None)
            sock = get_extra_info("socket") if callable(get_extra_info) else None
            with self._lock:
                if isinstance(sock, socket.socket):
                    self._socket = sock
                    if self.fired:
                        self._shutdown()

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            self._shutdown()

    def _shutdown(self) -> None:
        if self._socket is not None:
            with contextlib.suppress(OSError):  # already closed: nothing left to wake
                self._socket.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> _Watchdog:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()


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
        timeout = self.limits.for_request(request)
        watchdog = _Watchdog(request.deadline - self.limits.clock())
        try:
            with watchdog, _mapped_errors(request.url):
                return self._exchange(client, request, timeout, watchdog)
        except NetworkError:
            if watchdog.fired:
                raise NetworkError(f"timed out talking to {request.url}") from None
            raise

    def _exchange(
        self,
        client: httpx.Client,
        request: HttpRequest,
        timeout: httpx.Timeout,
        watchdog: _Watchdog,
    ) -> HttpResponse:
        built = _build(client, request, timeout, {"trace": watchdog.trace})
        raw = client.send(built, stream=True, follow_redirects=False)
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
