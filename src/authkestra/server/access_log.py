"""The access log and the latency metric: one line per request, written when its
response has gone out, and its time in the endpoint's histogram.

A pure ASGI middleware (no body buffering): it gives each request an id (the
caller's ``X-Request-Id`` if it is a sane one) that the audit lines of the
request carry too and that the response returns, and measures the latency.
The path is logged without its query string: a query may hold credentials.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .logs import ACCESS, begin_request, current_request, end_request, new_request_id
from .metrics import observe_request

__all__ = ["AccessLogMiddleware"]


class AccessLogMiddleware:
    """Wraps the app: request id in, ``X-Request-Id`` out, one access line per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = _header(scope, b"x-request-id")
        request_id = new_request_id(given)
        token = begin_request(request_id)
        started = time.perf_counter()
        status: list[int] = []

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode("ascii")))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            observe_request(scope.get("path", ""), status[0] if status else 500, seconds)
            if ACCESS.isEnabledFor(logging.INFO):
                request = current_request()
                client = scope.get("client")
                ACCESS.info(
                    "request",
                    extra={
                        "fields": {
                            "method": scope.get("method"),
                            "path": scope.get("path", "")[:256],
                            "status": status[0] if status else 500,
                            "client_id": request.client_id if request else None,
                            "latency_ms": round(seconds * 1000, 2),
                            "request_id": request_id,
                            "address": client[0] if client else None,
                        }
                    },
                )
            end_request(token)


def _header(scope: Scope, name: bytes) -> str | None:
    headers: Any = scope.get("headers", [])
    for key, value in headers:
        if key.lower() == name:
            try:
                return str(value.decode("ascii"))
            except UnicodeDecodeError:
                return None
    return None
