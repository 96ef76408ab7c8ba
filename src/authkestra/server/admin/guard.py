"""Who may use the admin API: a Bearer token this server issued, with the right scope.

``authkestra:admin`` opens everything; ``authkestra:metrics`` opens ``/metrics`` only
(a Prometheus scraper reads metrics, it changes no client). No token, or one that is
not a live token of this server (forged, expired, revoked, another issuer's, its
client since disabled or deleted): 401 ``invalid_token``. A token without the scope:
403 ``insufficient_scope``. A sender-constrained token (DPoP or certificate-bound) is
refused: it would be a bearer token here, which is what its binding forbids.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from ..context import ServerContext
from ..endpoints._common import bearer_token
from ..logs import note_client
from ..store import UnknownClient
from ..token_check import read_own_token

__all__ = ["ADMIN_SCOPE", "METRICS_SCOPE", "AdminRefused", "authorize"]

ADMIN_SCOPE = "authkestra:admin"
METRICS_SCOPE = "authkestra:metrics"
_REALM = "authkestra-admin"


class AdminRefused(Exception):
    """The request may not use the admin API; :meth:`response` is its answer."""

    def __init__(self, status: int, error: str | None, description: str, scope: str) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description
        self.scope = scope

    def response(self) -> JSONResponse:
        body = {"error": self.error or "invalid_token", "error_description": self.description}
        challenge = f'Bearer realm="{_REALM}"'
        if self.error is not None:  # RFC 6750 §3.1: no error code when no token was sent
            challenge += f', error="{self.error}", error_description="{self.description}"'
        if self.status == 403:
            challenge += f', scope="{self.scope}"'
        return JSONResponse(
            body,
            status_code=self.status,
            headers={"WWW-Authenticate": challenge, "Cache-Control": "no-store"},
        )


def authorize(ctx: ServerContext, request: Request, scope: str = ADMIN_SCOPE) -> dict[str, Any]:
    """The claims of the request's admin token, if it grants ``scope`` (or the admin
    scope); else :class:`AdminRefused`. Blocking (it may read the store)."""
    if "authorization" not in request.headers:
        raise AdminRefused(401, None, "the admin API needs a Bearer token", scope)
    token = bearer_token(request)
    if token is None:
        raise AdminRefused(401, "invalid_request", "send one Authorization: Bearer header", scope)
    claims = read_own_token(token, keys=ctx.keys, issuer=ctx.issuer)
    if claims is None or ctx.revocations.is_revoked(claims["jti"]):
        raise AdminRefused(401, "invalid_token", "not a valid token of this server", scope)
    if "cnf" in claims:
        raise AdminRefused(
            401, "invalid_token", "a sender-constrained token cannot be a bearer token", scope
        )
    try:
        client = ctx.store.get_client(claims["client_id"])
    except UnknownClient:
        client = None
    if client is None or not client.enabled:
        raise AdminRefused(401, "invalid_token", "the token's client is gone or disabled", scope)
    note_client(client.client_id)
    granted = str(claims.get("scope", "")).split()
    if scope not in granted and ADMIN_SCOPE not in granted:
        raise AdminRefused(403, "insufficient_scope", f"the token lacks the scope {scope}", scope)
    return claims
