"""FastAPI integration: ``Depends(require_scopes("read"))`` gives the handler a verified token."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import HTTPException, WebSocketException
from starlette.requests import HTTPConnection

from ..errors import AuthError, ConfigError
from ._integration import TokenVerifier, check_scopes, scope_names
from .access_token import AccessToken
from .dpop import DPoPChecker
from .presentation import Presentation, check_holder_async
from .protected_resource import METADATA_STATE_KEY
from .rfc6750 import POLICY_VIOLATION, close_reason, refusal

__all__ = ["VERIFIER_STATE_KEY", "require_scopes"]

#: Where ``require_scopes`` finds the verifier when none is passed: ``app.state.token_verifier``.
VERIFIER_STATE_KEY = "token_verifier"


_SHARED: list[DPoPChecker] = []


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
) -> Callable[[HTTPConnection], Awaitable[AccessToken]]:
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

    Each scope is a non-empty string (ConfigError otherwise, here).
    """
    required = scope_names(scopes, "require_scopes")
    checker = dpop or _shared_checker()

    async def dependency(request: HTTPConnection) -> AccessToken:
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
                check_scopes(access, required)
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
            required_scopes=required,
            scheme=scheme,
            resource_metadata=metadata.url if metadata is not None else None,
        )
        raise HTTPException(status_code=status, detail=body, headers=headers or None)

    return dependency
