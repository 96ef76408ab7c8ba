"""FastAPI integration: ``Depends(require_scopes("read"))`` gives the handler a verified token.

The dependency is a FastAPI security dependency: the OpenAPI document declares an OAuth2
client-credentials scheme (:class:`ClientCredentialsScheme`) and each route's scopes,
so ``/docs`` shows them and its Authorize button can fetch a token;
``Security(require_scopes(), scopes=[...])`` and ``SecurityScopes`` work as in FastAPI.
:func:`use_authkestra` sets the app up: the verifier, the scheme's token URL (from the
issuer's metadata), and a check at start-up that every protected route has a verifier
-- a forgotten one stops the app from starting instead of failing its first request.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from typing import Any

from fastapi import HTTPException, Security, WebSocketException
from fastapi.openapi.models import OAuthFlowClientCredentials, OAuthFlows
from fastapi.security import OAuth2, SecurityScopes
from starlette.requests import HTTPConnection

from ..errors import AuthError, ConfigError
from ._integration import TokenVerifier, check_scopes, scope_names
from .access_token import AccessToken
from .dpop import DPoPChecker
from .presentation import Presentation, check_holder_async
from .protected_resource import METADATA_STATE_KEY
from .rfc6750 import POLICY_VIOLATION, close_reason, refusal

__all__ = ["VERIFIER_STATE_KEY", "ClientCredentialsScheme", "require_scopes", "use_authkestra"]

logger = logging.getLogger("authkestra")

#: Where ``require_scopes`` finds the verifier when none is passed: ``app.state.token_verifier``.
VERIFIER_STATE_KEY = "token_verifier"


_SHARED: list[DPoPChecker] = []


class ClientCredentialsScheme(OAuth2):
    """The OAuth2 client-credentials security scheme protected routes declare (OpenAPI).

    It only describes: ``require_scopes`` verifies the token (Bearer or DPoP). The token
    URL is set by :func:`use_authkestra` (from the issuer's metadata, or given); the
    scopes routes require are listed as they are declared, for ``/docs``.
    """

    def __init__(
        self,
        token_url: str = "token",  # noqa: S107 - a URL, relative until use_authkestra sets it
        *,
        scheme_name: str = "OAuth2ClientCredentials",
        description: str = "A token of the API's authorization server (client credentials).",
    ) -> None:
        super().__init__(
            flows=OAuthFlows(
                clientCredentials=OAuthFlowClientCredentials(tokenUrl=token_url, scopes={})
            ),
            scheme_name=scheme_name,
            description=description,
            auto_error=False,
        )

    @property
    def _flow(self) -> OAuthFlowClientCredentials:
        flow = self.model.flows.clientCredentials  # type: ignore[attr-defined]
        assert isinstance(flow, OAuthFlowClientCredentials)
        return flow

    @property
    def token_url(self) -> str:
        return self._flow.tokenUrl

    @token_url.setter
    def token_url(self, url: str) -> None:
        self._flow.tokenUrl = url

    def declare(self, scopes: Iterable[str]) -> None:
        """List ``scopes`` in the scheme (``/docs`` offers them when it asks for a token)."""
        for scope in scopes:
            self._flow.scopes.setdefault(scope, scope)

    async def __call__(self, request: HTTPConnection) -> None:
        return None  # a description: require_scopes reads and verifies the token


#: The scheme ``require_scopes`` declares unless given another.
CLIENT_CREDENTIALS = ClientCredentialsScheme()


def _shared_checker() -> DPoPChecker:
    """One default checker for every dependency of the process: one replay set for the API."""
    if not _SHARED:
        _SHARED.append(DPoPChecker())
    return _SHARED[0]


def require_scopes(
    *scopes: str,
    verifier: TokenVerifier | None = None,
    realm: str | None = None,
    dpop: DPoPChecker | None = None,
    scheme: ClientCredentialsScheme | None = None,
) -> Callable[..., Awaitable[AccessToken]]:
    """A dependency that verifies the bearer token and checks ``scopes``.

    ::

        app.state.token_verifier = JWTVerifier(issuer=..., audience=...)

        @app.get("/orders")
        async def orders(token: AccessToken = Depends(require_scopes("orders:read"))):
            return {"caller": token.client_id}

    Refusals are ``HTTPException`` with RFC 6750 ``WWW-Authenticate`` headers:
    401 ``invalid_token`` (no error code when no token was sent), 403
    ``insufficient_scope`` (with the needed scope), 400 ``invalid_request`` for
    more than one ``Authorization`` header or a token with whitespace inside, 503
    when the issuer cannot be reached to verify. On a WebSocket route a refusal is a
    ``WebSocketException`` closing the connection with 1008 (policy violation).

    Bound tokens are checked as in :class:`~authkestra.resource.BearerTokenMiddleware`:
    a DPoP-bound token needs the DPoP scheme and a proof (checked by ``dpop``; by
    default one checker, one replay set, for all the dependencies of the process),
    a certificate-bound one the TLS connection with that certificate. The proof is
    checked once per request: a router's dependency and a route's, or
    :class:`~authkestra.resource.BearerTokenMiddleware` in front, do not see it twice.

    With :func:`~authkestra.resource.protected_resource.serve_resource_metadata` on
    the app, every challenge names the API's RFC 9728 metadata.

    It is a security dependency: OpenAPI declares ``scheme`` (by default one
    :class:`ClientCredentialsScheme` for the app) with these scopes on the route, and
    ``Security(require_scopes(), scopes=["read"])`` requires the scopes given there
    (with those of enclosing ``Security`` declarations, as ``SecurityScopes`` has them).

    Each scope is a non-empty string (ConfigError otherwise, here).
    """
    required = scope_names(scopes, "require_scopes")
    checker = dpop or _shared_checker()
    declared = scheme or CLIENT_CREDENTIALS
    declared.declare(required)

    async def dependency(
        request: HTTPConnection,
        security_scopes: SecurityScopes,
        _scheme: None = Security(declared, scopes=list(required)),
    ) -> AccessToken:
        needed = tuple(dict.fromkeys((*required, *security_scopes.scopes)))
        chosen = verifier or getattr(request.app.state, VERIFIER_STATE_KEY, None)
        if chosen is None:
            raise ConfigError("require_scopes: pass verifier= or set app.state.token_verifier")
        presentation: Presentation | None = None
        error: AuthError | None = None
        try:
            presentation = Presentation.from_scope(request.scope)
            if presentation is not None:
                access = await chosen.verify(presentation.token)
                await check_holder_async(access, presentation, checker)
                check_scopes(access, needed)
                return access
        except AuthError as exc:
            error = exc
        if request.scope["type"] == "websocket":
            raise WebSocketException(code=POLICY_VIOLATION, reason=close_reason(error))
        scheme = presentation.scheme if presentation is not None else "Bearer"
        metadata = getattr(request.app.state, METADATA_STATE_KEY, None)
        status, body, headers = refusal(
            error,
            realm=realm,
            required_scopes=needed,
            scheme=scheme,
            resource_metadata=metadata.url if metadata is not None else None,
        )
        raise HTTPException(status_code=status, detail=body, headers=headers or None)

    # Found by use_authkestra's start-up check: a route that needs app.state's verifier.
    dependency.authkestra_needs_app_verifier = verifier is None  # type: ignore[attr-defined]
    return dependency


def use_authkestra(
    app: Any,
    verifier: TokenVerifier | None = None,
    *,
    token_url: str | None = None,
    scheme: ClientCredentialsScheme | None = None,
) -> None:
    """Set a FastAPI app up for :func:`require_scopes`.

    ``verifier`` becomes ``app.state.token_verifier``. At start-up (the app's lifespan):
    every route protected by ``require_scopes`` without ``verifier=`` must find one there,
    or the app does not start (ConfigError naming the route); and the OpenAPI scheme's
    token URL is ``token_url``, or the ``token_endpoint`` of the verifier's issuer
    metadata (RFC 8414) -- when that cannot be fetched, a warning, and the app starts.
    """
    if verifier is not None:
        if not callable(getattr(verifier, "verify", None)):
            raise ConfigError(
                f"use_authkestra: verifier must be a JWTVerifier or another verifier with"
                f" async verify(), not {type(verifier).__name__}"
            )
        setattr(app.state, VERIFIER_STATE_KEY, verifier)
    declared = scheme or CLIENT_CREDENTIALS
    if token_url is not None:
        declared.token_url = token_url
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(started: Any) -> AsyncIterator[Any]:
        _check_routes(app)
        _declare_route_scopes(app)
        if token_url is None:
            await _discover_token_url(getattr(app.state, VERIFIER_STATE_KEY, None), declared)
        async with inner(started) as state:
            yield state

    app.router.lifespan_context = lifespan


def _check_routes(app: Any) -> None:
    found = getattr(app.state, VERIFIER_STATE_KEY, None)
    if found is not None:
        if not callable(getattr(found, "verify", None)):
            raise ConfigError(
                f"app.state.{VERIFIER_STATE_KEY} is a {type(found).__name__}, not a verifier"
            )
        return
    for route in app.routes:
        dependant = getattr(route, "dependant", None)
        if dependant is not None and any(
            getattr(call, "authkestra_needs_app_verifier", False) for call in _calls(dependant)
        ):
            methods = " ".join(sorted(getattr(route, "methods", None) or ())) or "WEBSOCKET"
            raise ConfigError(
                f"{methods} {route.path}: require_scopes has no verifier: pass verifier= or"
                " use_authkestra(app, verifier)"
            )


def _calls(dependant: Any) -> Iterator[Any]:
    for sub in _dependants(dependant):
        yield sub.call


def _dependants(dependant: Any) -> Iterator[Any]:
    for sub in dependant.dependencies:
        yield sub
        yield from _dependants(sub)


def _declare_route_scopes(app: Any) -> None:
    """List in each scheme the scopes routes ask of it through ``Security(..., scopes=)``,
    for ``/docs`` (the ones given to ``require_scopes`` are listed already)."""
    for route in app.routes:
        dependant = getattr(route, "dependant", None)
        if dependant is None:
            continue
        for sub in _dependants(dependant):
            if isinstance(sub.call, ClientCredentialsScheme):
                # FastAPI keeps them in one attribute, or (0.120+) in two.
                scopes = [
                    *(getattr(sub, "security_scopes", None) or ()),
                    *(getattr(sub, "parent_oauth_scopes", None) or ()),
                    *(getattr(sub, "own_oauth_scopes", None) or ()),
                ]
                sub.call.declare(scopes)


async def _discover_token_url(verifier: Any, scheme: ClientCredentialsScheme) -> None:
    from .._clock import SystemClock
    from .._protocol.discovery import discover
    from ..errors import AuthError
    from ._issuer_io import issuer_io

    issuer = getattr(verifier, "issuer", None)
    if not isinstance(issuer, str):
        return
    ctx, drivers = issuer_io(
        clock=SystemClock(),
        timeout=5.0,
        max_body=256 * 1024,
        allow_insecure_http=bool(getattr(verifier, "allow_insecure_http", False)),
        http_client=None,
        async_http_client=None,
    )
    try:
        metadata = await drivers.async_.run(discover(issuer, ctx))
    except AuthError as exc:
        logger.warning(
            "authkestra: the token URL for the OpenAPI document could not be read from %s"
            " (%s); give use_authkestra(token_url=...)",
            issuer,
            exc,
        )
        return
    scheme.token_url = metadata.endpoint
