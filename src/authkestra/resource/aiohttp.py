"""aiohttp servers: a middleware that verifies the token, and ``require_scopes`` on handlers.

::

    from aiohttp import web
    from authkestra.resource.aiohttp import access_token, bearer_token_middleware, require_scopes

    @require_scopes("orders:read")
    async def orders(request: web.Request) -> web.Response:
        return web.json_response({"caller": access_token(request).client_id})

    app = web.Application(middlewares=[bearer_token_middleware(verifier)])
    app.router.add_get("/orders", orders)

The middleware verifies the token of every request that presents one (a request with
none stays anonymous: routes without ``require_scopes`` serve it) and refuses a bad one
per RFC 6750 (401 ``invalid_token``, 400 ``invalid_request``, 503 when the issuer cannot
be reached); ``require_scopes`` refuses a request without a verified token (401) or
without the scopes (403 ``insufficient_scope``). DPoP-bound tokens need their proof.
The API's RFC 9728 metadata is served (built from the verifier by default;
``resource_metadata=False`` for none) and named in every challenge. aiohttp gives no
TLS client certificate here: certificate-bound tokens are refused.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from ..errors import AuthError, ConfigError
from ._guard import Guard
from ._integration import TokenVerifier, check_scopes, scope_names
from .access_token import AccessToken
from .dpop import DPoPChecker
from .presentation import Presentation
from .protected_resource import ResourceMetadata

__all__ = ["ACCESS_TOKEN_KEY", "access_token", "bearer_token_middleware", "require_scopes"]


def _request_key(name: str, kind: type) -> Any:
    """A typed request key where aiohttp has them (3.13+), else the name itself."""
    maker = getattr(web, "RequestKey", None)
    return maker(name, kind) if maker is not None else name


#: Where the verified token is kept on the request: ``request[ACCESS_TOKEN_KEY]``.
ACCESS_TOKEN_KEY: Any = _request_key("authkestra_access_token", AccessToken)
_SETTINGS_KEY: Any = _request_key("authkestra_settings", object)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class _Settings(Guard):
    def refuse(
        self, error: AuthError | None, required: tuple[str, ...] = (), scheme: str = "Bearer"
    ) -> web.Response:
        status, body, headers = self.refusal(error, required, scheme)
        return web.Response(
            status=status, text=json.dumps(body), content_type="application/json", headers=headers
        )


def bearer_token_middleware(
    verifier: TokenVerifier,
    *,
    realm: str | None = None,
    dpop: DPoPChecker | None = None,
    resource_metadata: ResourceMetadata | bool | None = None,
) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """The middleware for ``web.Application(middlewares=[...])``; see the module."""
    if not callable(getattr(verifier, "verify", None)):
        raise ConfigError("bearer_token_middleware: give a verifier (JWTVerifier, ...)")
    settings = _Settings(verifier, realm=realm, dpop=dpop, resource_metadata=resource_metadata)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        request[_SETTINGS_KEY] = settings
        metadata = settings.metadata
        if metadata is not None and request.path == metadata.path and request.method == "GET":
            return web.Response(
                body=metadata.body,
                content_type="application/json",
                headers={"Cache-Control": "public, max-age=3600"},
            )
        presentation: Presentation | None = None
        try:
            presentation = settings.presentation(_scope(request))
            if presentation is not None:
                request[ACCESS_TOKEN_KEY] = await settings.verify_async(presentation)
        except AuthError as exc:
            scheme = presentation.scheme if presentation is not None else "Bearer"
            return settings.refuse(exc, scheme=scheme)
        return await handler(request)

    return middleware


def access_token(request: web.Request) -> AccessToken:
    """The verified token of ``request`` (in a handler ``require_scopes`` protects)."""
    found = request.get(ACCESS_TOKEN_KEY)
    if not isinstance(found, AccessToken):
        raise ConfigError(
            "no verified token on this request: protect the handler with require_scopes"
        )
    return found


def require_scopes(*scopes: str) -> Callable[[Handler], Handler]:
    """Decorate a handler: it runs only for a verified token with every one of ``scopes``.
    Each scope is a non-empty string (ConfigError otherwise, here)."""
    required = scope_names(scopes, "require_scopes")

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def wrapper(request: web.Request) -> web.StreamResponse:
            settings = request.get(_SETTINGS_KEY)
            if not isinstance(settings, _Settings):
                raise ConfigError(
                    "require_scopes: add bearer_token_middleware(verifier) to the application"
                )
            access = request.get(ACCESS_TOKEN_KEY)
            if not isinstance(access, AccessToken):
                return settings.refuse(None, required)
            try:
                check_scopes(access, required)
            except AuthError as exc:
                return settings.refuse(exc, required)
            return await handler(request)

        return wrapper

    return decorate


def _scope(request: web.Request) -> dict[str, Any]:
    """The parts of an ASGI scope :class:`Presentation` reads, from an aiohttp request."""
    return {
        "type": "http",
        "method": request.method,
        "scheme": request.scheme,
        "raw_path": request.raw_path.encode("latin-1", "replace"),
        "path": request.path,
        "headers": [(name.lower(), value) for name, value in request.raw_headers],
    }
