"""Starlette integration: an authentication backend and a scope-checking decorator."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.authentication import (
    AuthCredentials,
    AuthenticationBackend,
    AuthenticationError,
    BaseUser,
)
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response

from ..errors import AuthError
from ._protocol import TokenVerifier, check_scopes
from .access_token import AccessToken
from .dpop import DPoPChecker
from .presentation import Presentation, check_holder_async
from .rfc6750 import refusal

__all__ = ["BearerTokenBackend", "TokenUser", "on_auth_error", "requires_scopes"]


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
    ``@requires`` works; :func:`requires_scopes` adds RFC 6750 answers.

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
    error: AuthError | None, required: tuple[str, ...] = (), scheme: str = "Bearer"
) -> Response:
    status, body, headers = refusal(error, required_scopes=required, scheme=scheme)
    return JSONResponse(body, status_code=status, headers=headers)


def on_auth_error(conn: HTTPConnection, exc: AuthenticationError) -> Response:
    """The ``on_error`` for ``AuthenticationMiddleware``: RFC 6750 (and RFC 9449) answers."""
    if isinstance(exc, _VerificationFailed):
        return _refusal(exc.error, scheme=exc.scheme)
    return _refusal(None)


Endpoint = Callable[..., Awaitable[Response]]


def requires_scopes(*scopes: str) -> Callable[[Endpoint], Endpoint]:
    """Decorate an endpoint: 401 without a verified token, 403 without ``scopes``."""

    def decorate(endpoint: Endpoint) -> Endpoint:
        @functools.wraps(endpoint)
        async def wrapper(request: Request, *args: Any, **kwargs: Any) -> Response:
            user = request.user if "user" in request.scope else None
            if not isinstance(user, TokenUser):
                return _refusal(None, scopes)
            try:
                check_scopes(user.access_token, scopes)
            except AuthError as exc:
                return _refusal(exc, scopes, user.scheme)
            return await endpoint(request, *args, **kwargs)

        return wrapper

    return decorate
