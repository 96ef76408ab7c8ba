"""A plain ASGI middleware: every request needs a valid bearer or DPoP token (any ASGI app)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from ..errors import AuthError, ConfigError
from ._integration import TokenVerifier, check_scopes, scope_names
from ._options import name_list
from .dpop import DPoPChecker
from .presentation import Presentation, check_holder_async
from .protected_resource import ResourceMetadata, metadata_for
from .rfc6750 import refusal

__all__ = ["ACCESS_TOKEN_KEY", "BearerTokenMiddleware"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Where the verified AccessToken is put in the ASGI scope (and ``scope["state"]["access_token"]``).
ACCESS_TOKEN_KEY = "authkestra.access_token"


class BearerTokenMiddleware:
    """Verifies the bearer token of every HTTP and WebSocket request before the app sees it.

    ::

        app = BearerTokenMiddleware(app, verifier, scopes=["orders:read"], exempt_paths=["/up"])

    Refusals follow RFC 6750: 401 with ``WWW-Authenticate: Bearer
    error="invalid_token"`` (or a bare ``Bearer`` when no token was sent), 403
    with ``error="insufficient_scope"`` and the needed scope, 400
    ``error="invalid_request"`` for more than one ``Authorization`` header or a
    token with whitespace inside, 503 when the issuer cannot be reached to verify. The
    verified :class:`~authkestra.resource.AccessToken` is in
    ``scope["authkestra.access_token"]`` and ``scope["state"]["access_token"]``
    (``request.state.access_token`` in Starlette and FastAPI).

    DPoP (RFC 9449 §7): a token bound to a key (``cnf.jkt``) must come as
    ``Authorization: DPoP <token>`` with a ``DPoP`` proof header, checked by
    ``dpop`` (a :class:`~authkestra.resource.dpop.DPoPChecker`, one by default);
    sent as ``Bearer`` it is refused, and so is an unbound token sent as ``DPoP``.
    The proof's ``htu`` is compared with the URL the request reached (its ``Host``
    header and path): behind a proxy that rewrites either, bound tokens fail.

    Mutual TLS (RFC 8705 §3): a token bound to a client certificate
    (``cnf["x5t#S256"]``) is accepted only over a TLS connection presenting that
    certificate -- under uvicorn, run the app with
    :func:`authkestra.tls.uvicorn.uvicorn_tls_options` so it learns the certificate.

    ``scopes`` and ``exempt_paths`` are lists (a single string is a ConfigError, as
    are scopes that are not non-empty strings and paths that do not start with ``/``).
    A FastAPI dependency or Starlette backend behind this middleware does not check
    the DPoP proof again on the same request (it would be a replay).

    RFC 9728: the API's protected resource metadata is served (without a token) at
    ``/.well-known/oauth-protected-resource[/path]`` and named in every challenge
    (``resource_metadata="..."``). By default it is built from the verifier (its
    issuer, and its audience as the resource) when the verifier has exactly one of
    each; pass a :class:`~authkestra.resource.protected_resource.ResourceMetadata` to
    say more (scopes, a name), or ``resource_metadata=False`` for none.
    """

    def __init__(
        self,
        app: ASGIApp,
        verifier: TokenVerifier,
        *,
        scopes: Iterable[str] = (),
        realm: str | None = None,
        exempt_paths: Iterable[str] = (),
        dpop: DPoPChecker | None = None,
        resource_metadata: ResourceMetadata | bool | None = None,
    ) -> None:
        self.app = app
        self.verifier = verifier
        self.scopes = scope_names(name_list(scopes, "scopes"), "scopes")
        self.realm = realm
        paths = name_list(exempt_paths, "exempt_paths")
        if not all(isinstance(path, str) and path.startswith("/") for path in paths):
            raise ConfigError("exempt_paths must be paths, each a string starting with /")
        self.exempt_paths = frozenset(paths)
        self.dpop = dpop or DPoPChecker()
        self.resource_metadata = metadata_for(verifier, resource_metadata)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        metadata = self.resource_metadata
        if (
            metadata is not None
            and scope["type"] == "http"
            and scope.get("path") == metadata.path
            and scope.get("method") in ("GET", "HEAD")
        ):
            await send({"type": "http.response.start", "status": 200,
                        "headers": metadata.headers()})  # fmt: skip
            body = metadata.body if scope.get("method") == "GET" else b""
            await send({"type": "http.response.body", "body": body})
            return
        if scope["type"] not in ("http", "websocket") or scope.get("path") in self.exempt_paths:
            await self.app(scope, receive, send)
            return
        presentation: Presentation | None = None
        error: AuthError | None = None
        try:
            presentation = Presentation.from_scope(scope)
            if presentation is not None:
                access = await self.verifier.verify(presentation.token)
                await check_holder_async(access, presentation, self.dpop)
                check_scopes(access, self.scopes)
        except AuthError as exc:
            error = exc
        else:
            if presentation is not None:
                scope[ACCESS_TOKEN_KEY] = access
                scope.setdefault("state", {})["access_token"] = access
                await self.app(scope, receive, send)
                return
        scheme = presentation.scheme if presentation is not None else "Bearer"
        await self._refuse(scope, send, error, scheme)

    async def _refuse(
        self, scope: Scope, send: Send, error: AuthError | None, scheme: str = "Bearer"
    ) -> None:
        if scope["type"] == "websocket":
            # Closing before accepting makes the server refuse the handshake (HTTP 403).
            await send({"type": "websocket.close", "code": 1008})
            return
        status, body, extra = refusal(
            error,
            realm=self.realm,
            required_scopes=self.scopes,
            scheme=scheme,
            resource_metadata=self.resource_metadata.url if self.resource_metadata else None,
        )
        payload = json.dumps(body).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(payload)).encode()),
        ]
        headers += [(name.lower().encode(), value.encode()) for name, value in extra.items()]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})
