"""The admin API: a second listener (``serve --admin-port``) for clients, keys and metrics.

Every route but ``/healthz`` and ``/admin/openapi.json`` needs a token of this server
(see :mod:`.guard`). Client changes go through the same
:class:`~authkestra.server.registration.Registry` as the CLI, logged with door ``admin``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .. import metrics
from ..access_log import AccessLogMiddleware
from ..context import ServerContext, build_context
from ..settings import ServerSettings
from . import clients, issuers, keys, registration
from ._http import admin_handler
from .guard import ADMIN_SCOPE, METRICS_SCOPE
from .openapi import openapi_document

__all__ = ["ADMIN_SCOPE", "METRICS_SCOPE", "create_admin_app"]


def _metrics(ctx: ServerContext, request: Request) -> Response:
    return Response(metrics.render(ctx.keys), media_type=metrics.CONTENT_TYPE)


async def _openapi(request: Request) -> Response:
    ctx: ServerContext = request.app.state.ctx
    return JSONResponse(openapi_document(ctx.issuer))


async def _alive(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def _not_here(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    title = "Not Found" if exc.status_code == 404 else "Method Not Allowed"
    return JSONResponse(
        {"type": "about:blank", "title": title, "status": exc.status_code,
         "detail": "the admin API has no such route (see /admin/openapi.json)"},
        status_code=exc.status_code,
        media_type="application/problem+json",
    )  # fmt: skip


def create_admin_app(
    settings: ServerSettings | None = None, *, context: ServerContext | None = None
) -> Starlette:
    """The admin API as an ASGI app, over its own context (or the ``context`` given)."""
    settings = settings or ServerSettings.from_environment()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        ctx = context or build_context(settings)
        app.state.ctx = ctx
        try:
            yield
        finally:
            if context is None:
                ctx.close()

    routes = [
        Route(path, endpoint, methods=[method])
        for method, path, endpoint in (
            *clients.ROUTES,
            *keys.ROUTES,
            *issuers.ROUTES,
            *registration.ROUTES,
        )
    ]
    routes += [
        Route("/metrics", admin_handler(_metrics, scope=METRICS_SCOPE), methods=["GET"]),
        Route("/admin/openapi.json", _openapi, methods=["GET"]),
        Route("/healthz", _alive, methods=["GET"]),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(AccessLogMiddleware)],
        lifespan=lifespan,
        exception_handlers={HTTPException: _not_here},
    )
    app.router.redirect_slashes = False
    if context is not None:
        app.state.ctx = context
    return app
