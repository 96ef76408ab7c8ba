"""The endpoints of the steady state, reached without the router.

Nearly every request an authorization server answers is ``POST /token``, then
introspection, the JWKS and the metadata. For those exact method-and-path pairs this
middleware calls the endpoint itself, skipping Starlette's routing and exception
middleware (about 5 % of a token request's time in process, ``bench/README.md``).
Everything else (another method, a HEAD, a path with a trailing slash, a 404) goes
on to the application as before. The access log, the request id and the metrics are
outside it, unchanged; a store or Redis failure gets the same 503 answer; any other
exception goes on up to the server-error handler, as from a route.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["HotPaths"]

Endpoint = Callable[[Request], Awaitable[Response]]
ErrorHandler = Callable[[Request, Exception], Awaitable[Response]]


class HotPaths:
    """Calls ``routes[(method, path)]`` directly; passes every other request to ``app``."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        routes: Mapping[tuple[str, str], Endpoint],
        backend_errors: tuple[type[Exception], ...],
        on_backend_error: ErrorHandler,
    ) -> None:
        self.app = app
        self.routes = dict(routes)
        self.backend_errors = backend_errors
        self.on_backend_error = on_backend_error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = (
            self.routes.get((scope["method"], scope["path"])) if scope["type"] == "http" else None
        )
        if endpoint is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive, send)
        try:
            response = await endpoint(request)
        except self.backend_errors as exc:
            response = await self.on_backend_error(request, exc)
        await response(scope, receive, send)
