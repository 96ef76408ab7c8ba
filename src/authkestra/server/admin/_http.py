"""What every admin endpoint shares: the token check, a bounded JSON body, JSON answers."""

from __future__ import annotations

import functools
import inspect
import json
import math
from collections.abc import Awaitable, Callable
from typing import Any

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ...errors import OAuthError
from ..context import ServerContext
from ..endpoints._common import read_body
from .guard import ADMIN_SCOPE, AdminRefused, authorize

__all__ = ["MAX_BODY_BYTES", "AdminError", "admin_handler", "json_body"]

#: The largest admin request body (a JWK Set of a few keys, or certificates, fits).
MAX_BODY_BYTES = 64 * 1024
_NO_STORE = {"Cache-Control": "no-store"}


class AdminError(Exception):
    """An admin request refused: HTTP ``status``, an error code and a one-line reason."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description

    def response(self) -> JSONResponse:
        return JSONResponse(
            {"error": self.error, "error_description": self.description},
            status_code=self.status,
            headers=_NO_STORE,
        )


def json_body(body: bytes) -> Any:
    """The request body as JSON; AdminError if it is not."""
    try:
        return json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise AdminError(400, "invalid_request", "the body must be JSON") from None


async def _read_body(request: Request) -> bytes:
    try:
        return await read_body(request, MAX_BODY_BYTES)
    except OAuthError as too_large:
        raise AdminError(413, "invalid_request", too_large.error_description or "") from None


def admin_handler(
    handler: Callable[..., Any], *, scope: str = ADMIN_SCOPE
) -> Callable[[Request], Awaitable[Response]]:
    """An endpoint from ``handler(ctx, request[, body])``: run in a worker thread (it uses
    the store), once the token grants ``scope``. It returns a JSON-able value, or
    ``(status, value)``; a value of None is an empty answer."""
    takes_body = len(inspect.signature(handler).parameters) == 3

    @functools.wraps(handler)
    async def endpoint(request: Request) -> Response:
        ctx: ServerContext = request.app.state.ctx
        address = request.client.host if request.client else "unknown"
        retry_after = ctx.limiter.blocked(address)
        if retry_after is not None:  # too many tokens refused from there: no more checks
            return JSONResponse(
                {"error": "temporarily_unavailable",
                 "error_description": "too many refused tokens from this address: retry"
                 " after the time in Retry-After"},
                status_code=429,
                headers={**_NO_STORE, "Retry-After": str(math.ceil(retry_after))},
            )  # fmt: skip
        try:
            body = await _read_body(request) if takes_body else b""
            await anyio.to_thread.run_sync(authorize, ctx, request, scope)
            args = (ctx, request, body) if takes_body else (ctx, request)
            result = await anyio.to_thread.run_sync(lambda: handler(*args))
        except AdminRefused as refused:
            if refused.status == 401:
                ctx.limiter.record_failure(address)  # each costs a signature check
            return refused.response()
        except AdminError as error:
            return error.response()
        status, value = result if isinstance(result, tuple) else (200, result)
        if value is None:
            return Response(status_code=status, headers=_NO_STORE)
        if isinstance(value, Response):
            return value
        return JSONResponse(value, status_code=status, headers=_NO_STORE)

    return endpoint
