"""``create_app()``: the Starlette application of the authorization server."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .access_log import AccessLogMiddleware
from .context import ServerContext, build_context
from .endpoints._common import NO_STORE, RETRY_UNAVAILABLE_AFTER
from .endpoints.discovery import jwks_endpoint, metadata_endpoint, revocation_list_endpoint
from .endpoints.health import health_endpoint, readiness_endpoint
from .endpoints.introspection import introspection_endpoint, revocation_endpoint
from .endpoints.registration import client_registration_endpoint, register_endpoint
from .endpoints.token import token_endpoint
from .hot_paths import HotPaths
from .housekeeping import purge_forever
from .logs import skip_what_no_line_shows
from .metrics import count_backend_error
from .settings import ServerSettings
from .store import Store
from .tls_server import refresh_forever
from .tracing import configure_from_environment, instrument

__all__ = ["create_app", "create_app_from_environment"]

logger = logging.getLogger("authkestra.server")


async def _http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        # Not an OAuth endpoint: an RFC 9457 problem, not an OAuth error a client might act on.
        return JSONResponse(
            {"type": "about:blank", "title": "Not Found", "status": 404,
             "detail": "this server has no such path"},
            status_code=404,
            media_type="application/problem+json",
        )  # fmt: skip
    error = "invalid_request" if exc.status_code < 500 else "server_error"
    return JSONResponse(
        {"error": error, "error_description": str(exc.detail)},
        status_code=exc.status_code,
        headers=exc.headers,
    )


def _backend_errors() -> tuple[type[Exception], ...]:
    """The exceptions that say the store or Redis is in trouble (Redis only if installed)."""
    from sqlalchemy.exc import DBAPIError

    errors: list[type[Exception]] = [DBAPIError]
    try:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeout
    except ImportError:
        return tuple(errors)
    return (*errors, RedisConnectionError, RedisTimeout)


async def _backend_error(request: Request, exc: Exception) -> Response:
    """The store or Redis unreachable: a 503 to retry (``Retry-After``), never a 500.

    Registered for these exception classes, so the answer is final (a handler of
    ``Exception`` would have Starlette re-raise it into the server's log as a traceback).
    """
    from sqlalchemy.exc import DBAPIError, OperationalError

    unreachable = not isinstance(exc, DBAPIError) or (
        isinstance(exc, OperationalError) or exc.connection_invalidated
    )
    if not unreachable:
        return await _unexpected(request, exc)
    count_backend_error("store" if isinstance(exc, DBAPIError) else "redis")
    logger.warning("authkestra server: store or Redis unreachable (%s)", type(exc).__name__)
    return JSONResponse(
        {
            "error": "temporarily_unavailable",
            "error_description": "the server cannot reach its store: retry after the time in"
            " Retry-After",
        },
        status_code=503,
        headers={**NO_STORE, "Retry-After": str(RETRY_UNAVAILABLE_AFTER)},
    )


async def _unexpected(_request: Request, exc: Exception) -> Response:
    # Logged with its traceback here; the client gets no detail about the internals.
    logger.error("authkestra server: unhandled %s", type(exc).__name__, exc_info=exc)
    return JSONResponse({"error": "server_error"}, status_code=500, headers=NO_STORE)


def create_app(
    settings: ServerSettings | None = None,
    *,
    store: Store | None = None,
    context: ServerContext | None = None,
    tracer_provider: Any = None,
) -> Starlette:
    """The authorization server as an ASGI app.

    ``settings`` default to the ``AUTHKESTRA_SERVER_*`` environment
    (:meth:`ServerSettings.from_environment <authkestra.server.ServerSettings.from_environment>`).
    The store is opened, migrated and given a signing key at startup -- or pass
    a ``context`` built with :func:`~authkestra.server.context.build_context`,
    which the app then uses (and leaves open) as it is.

    ``tracer_provider``: an OpenTelemetry tracer provider to trace requests into (the
    ``otel`` extra); without one, the ``tracing`` setting makes one from the ``OTEL_*``
    environment.
    """
    settings = settings or ServerSettings.from_environment()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        ctx = context or build_context(settings, store)
        app.state.ctx = ctx
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(purge_forever, ctx.store)
            if ctx.settings.tls_cert is not None:
                # The TLS layer of this process trusts the registered self-signed certificates:
                # read once by its SSL context factory at start, kept current from here.
                tasks.start_soon(refresh_forever, ctx.store, ctx.settings.tls_trust_refresh)
            try:
                yield
            finally:
                tasks.cancel_scope.cancel()
                if context is None:
                    ctx.close()

    routes = [
        Route("/token", token_endpoint, methods=["POST"]),
        Route("/introspect", introspection_endpoint, methods=["POST"]),
        Route("/revoke", revocation_endpoint, methods=["POST"]),
        Route("/.well-known/oauth-authorization-server", metadata_endpoint, methods=["GET"]),
        Route("/.well-known/openid-configuration", metadata_endpoint, methods=["GET"]),
        Route("/jwks.json", jwks_endpoint, methods=["GET"]),
        Route("/revocations", revocation_list_endpoint, methods=["GET"]),
        Route("/healthz", health_endpoint, methods=["GET"]),
        Route("/readyz", readiness_endpoint, methods=["GET"]),
    ]
    if settings.registration:
        routes += [
            Route("/register", register_endpoint, methods=["POST"]),
            Route(
                "/register/{client_id}",
                client_registration_endpoint,
                methods=["GET", "PUT", "DELETE"],
            ),
        ]
    hot = {
        ("POST", "/token"): token_endpoint,
        ("POST", "/introspect"): introspection_endpoint,
        ("GET", "/jwks.json"): jwks_endpoint,
        ("GET", "/.well-known/oauth-authorization-server"): metadata_endpoint,
        ("GET", "/.well-known/openid-configuration"): metadata_endpoint,
    }
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(AccessLogMiddleware),
            Middleware(
                HotPaths,
                routes=hot,
                backend_errors=_backend_errors(),
                on_backend_error=_backend_error,
            ),
        ],
        lifespan=lifespan,
        exception_handlers={
            HTTPException: _http_error,
            **dict.fromkeys(_backend_errors(), _backend_error),
            Exception: _unexpected,
        },
    )
    if tracer_provider is None and settings.tracing:
        tracer_provider = configure_from_environment()
    if tracer_provider is not None:
        instrument(app, tracer_provider)
    # No 307 from /token/ to /token (built from the Host header): an unknown path is a 404.
    app.router.redirect_slashes = False
    if context is not None:
        # A ready context serves at once, also where no lifespan runs (tests, embedding).
        app.state.ctx = context
    return app


def create_app_from_environment() -> Starlette:
    """``create_app()`` with settings from the environment (uvicorn workers use this)."""
    skip_what_no_line_shows()  # as serve did for itself: the worker logs the same lines
    return create_app(ServerSettings.from_environment())
