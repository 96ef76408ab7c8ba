"""Starlette integration: an authentication backend and a scope-checking decorator."""

from __future__ import annotations

import functools
import inspect
import warnings
from collections.abc import Callable
from typing import Any, TypeVar, cast

from starlette.authentication import (
    AuthCredentials,
    AuthenticationBackend,
    AuthenticationError,
    BaseUser,
)
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse, Response
from starlette.websockets import WebSocket

from ..errors import AuthError, ConfigError
from ._integration import TokenVerifier, check_scopes, scope_names
from .access_token import AccessToken
from .dpop import DPoPChecker
from .presentation import Presentation, check_holder_async
from .protected_resource import METADATA_STATE_KEY
from .rfc6750 import POLICY_VIOLATION, close_reason, refusal

__all__ = ["BearerTokenBackend", "TokenUser", "on_auth_error", "require_scopes"]


class TokenUser(BaseUser):
    """``request.user`` for a request with a verified token."""

    def __init__(self, access_token: AccessToken, scheme: str = "Bearer") -> None:
        self.access_token = access_token
        #: How the token came: "Bearer" or "DPoP" (the scheme of any later refusal).
        self.scheme = scheme

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def display_name(self) -> str:
        return self.access_token.client_id or self.access_token.subject or ""

    @property
    def identity(self) -> str:
        return self.display_name


class _VerificationFailed(AuthenticationError):
    def __init__(self, error: AuthError, scheme: str = "Bearer") -> None:
        super().__init__(str(error))
        self.error = error
        self.scheme = scheme


class BearerTokenBackend(AuthenticationBackend):
    """Bearer tokens for Starlette's ``AuthenticationMiddleware``.

    ``AuthenticationMiddleware(app, backend=BearerTokenBackend(verifier), on_error=on_auth_error)``.

    A request without a bearer token stays anonymous (``request.user`` is not
    authenticated); one with an invalid token (401) or a malformed
    ``Authorization`` (400: more than one header, whitespace inside the token) is
    refused by ``on_auth_error``.
    ``request.auth.scopes`` holds the token's scopes, so Starlette's own
    ``@requires`` works; :func:`require_scopes` adds RFC 6750 answers.

    Bound tokens are checked as by :class:`~authkestra.resource.asgi.BearerTokenMiddleware`:
    DPoP-bound ones need the DPoP scheme and a proof (checked by ``dpop``),
    certificate-bound ones the TLS connection with that certificate.
    """

    def __init__(self, verifier: TokenVerifier, *, dpop: DPoPChecker | None = None) -> None:
        self.verifier = verifier
        self.dpop = dpop or DPoPChecker()

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, BaseUser] | None:
        try:
            presentation = Presentation.from_scope(conn.scope)
        except AuthError as exc:
            raise _VerificationFailed(exc) from None
        if presentation is None:
            return None
        try:
            access = await self.verifier.verify(presentation.token)
            await check_holder_async(access, presentation, self.dpop)
        except AuthError as exc:
            raise _VerificationFailed(exc, presentation.scheme) from None
        credentials = AuthCredentials(["authenticated", *access.scopes])
        return credentials, TokenUser(access, presentation.scheme)


def _refusal(
    conn: HTTPConnection,
    error: AuthError | None,
    required: tuple[str, ...] = (),
    scheme: str = "Bearer",
) -> Response:
    metadata = getattr(conn.app.state, METADATA_STATE_KEY, None) if "app" in conn.scope else None
    status, body, headers = refusal(
        error,
        required_scopes=required,
        scheme=scheme,
        resource_metadata=metadata.url if metadata is not None else None,
    )
    return JSONResponse(body, status_code=status, headers=headers)


def on_auth_error(conn: HTTPConnection, exc: AuthenticationError) -> Response:
    """The ``on_error`` for ``AuthenticationMiddleware``: RFC 6750 (and RFC 9449) answers."""
    if isinstance(exc, _VerificationFailed):
        return _refusal(conn, exc.error, scheme=exc.scheme)
    return _refusal(conn, None)


Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])


def require_scopes(*scopes: str) -> Callable[[Endpoint], Endpoint]:
    """Decorate an endpoint: it runs only for a verified token with every one of ``scopes``.

    Over HTTP: 401 without a verified token, 403 without the scopes, with RFC 6750
    ``WWW-Authenticate`` headers. A WebSocket is closed with 1008 (policy violation).
    Like Starlette's own ``requires``, it serves async and sync endpoints and the
    methods of ``HTTPEndpoint`` and ``WebSocketEndpoint``: the request (or websocket)
    is the argument that is an ``HTTPConnection``. Each scope is a non-empty string
    (ConfigError otherwise, here).
    """
    required = scope_names(scopes, "require_scopes")

    def decorate(endpoint: Endpoint) -> Endpoint:
        if not _is_async(endpoint):

            @functools.wraps(endpoint)
            def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
                conn = _connection(args, kwargs)
                verdict = _verdict(conn, required)
                if verdict is None:
                    return endpoint(*args, **kwargs)
                return _refusal(conn, verdict[0], required, verdict[1])

            return cast(Endpoint, sync_wrapper)

        @functools.wraps(endpoint)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            conn = _connection(args, kwargs)
            verdict = _verdict(conn, required)
            if verdict is None:
                return await endpoint(*args, **kwargs)
            if isinstance(conn, WebSocket):
                await conn.close(POLICY_VIOLATION, close_reason(verdict[0]))
                return None
            return _refusal(conn, verdict[0], required, verdict[1])

        return cast(Endpoint, async_wrapper)

    return decorate


def requires_scopes(*scopes: str) -> Callable[[Endpoint], Endpoint]:
    """Deprecated name of :func:`require_scopes` (the name the FastAPI integration uses too)."""
    warnings.warn(
        "authkestra.resource.starlette.requires_scopes is now require_scopes;"
        " the old name goes in the next release",
        DeprecationWarning,
        stacklevel=2,
    )
    return require_scopes(*scopes)


def _is_async(endpoint: Callable[..., Any]) -> bool:
    while isinstance(endpoint, functools.partial):
        endpoint = endpoint.func
    # An object whose __call__ is async counts too, as in Starlette.
    return inspect.iscoroutinefunction(endpoint) or inspect.iscoroutinefunction(
        cast(Any, endpoint).__call__
    )


def _connection(args: tuple[Any, ...], kwargs: dict[str, Any]) -> HTTPConnection:
    for value in (*args, *kwargs.values()):
        if isinstance(value, HTTPConnection):
            return value
    raise ConfigError("require_scopes: the endpoint was not given a request or websocket")


def _verdict(
    conn: HTTPConnection, required: tuple[str, ...]
) -> tuple[AuthError | None, str] | None:
    """None when the connection's token has ``required``; else what to refuse it with.

    (error, scheme), the error None when no verified token came.
    """
    user = conn.scope.get("user")
    if not isinstance(user, TokenUser):
        return None, "Bearer"
    try:
        check_scopes(user.access_token, required)
    except AuthError as exc:
        return exc, user.scheme
    return None
