"""``POST /introspect`` (RFC 7662) and ``POST /revoke`` (RFC 7009)."""

from __future__ import annotations

import functools
from datetime import datetime, timezone
from typing import Any

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response

from ...errors import InvalidRequest, OAuthError, RateLimited
from ...tls import ClientCertificate, presented_certificate
from ..context import ServerContext
from ..logs import audit
from ..oauth_request import FormParams, single
from ..registration import INTROSPECT_ANY, INTROSPECT_AUDIENCE
from ..revocation_list import announce
from ..store import ClientRecord
from ..token_check import read_own_token
from ._common import (
    authenticate_client,
    client_address,
    error_response,
    json_response,
    read_form,
    reads_are_local,
    uses_basic,
)

__all__ = ["introspection_endpoint", "revocation_endpoint"]

INACTIVE = {"active": False}
#: Seconds a token's iat may precede its client's creation (clocks of the CLI and the servers).
CLOCK_SKEW = 300


def _token_param(params: FormParams) -> str:
    token = single(params, "token")
    if token is None:
        raise InvalidRequest(
            "token missing", status_code=400, error_description="the token parameter is required"
        )
    return token


def _introspect(
    ctx: ServerContext,
    authorization: str | None,
    params: FormParams,
    address: str,
    certificate: ClientCertificate | None = None,
) -> dict[str, Any]:
    caller = authenticate_client(ctx, authorization, params, address, certificate=certificate)
    token = _token_param(params)
    if caller.introspection is None:
        return INACTIVE  # no right to introspect: nothing is told, not even that it is ours
    claims = read_own_token(token, keys=ctx.keys, issuer=ctx.issuer)
    if claims is None or not _visible_to(caller, claims):
        return INACTIVE
    if ctx.revocations.is_revoked(claims["jti"]):
        return INACTIVE
    owner = ctx.clients.lookup(claims["client_id"])
    if owner is None or not owner.enabled:
        return INACTIVE  # its client was deleted or disabled since
    iat = claims.get("iat")
    if not isinstance(iat, int) or iat < owner.created_at.timestamp() - CLOCK_SKEW:
        return INACTIVE  # issued to an earlier client of that id, since deleted
    cnf = claims.get("cnf")
    dpop_bound = isinstance(cnf, dict) and "jkt" in cnf
    answer = {"active": True, "token_type": "DPoP" if dpop_bound else "Bearer"}
    # cnf: what the token is bound to (RFC 9449 §6.2, RFC 8705 §3.2), for the API to check.
    for name in ("scope", "client_id", "sub", "aud", "iss", "exp", "iat", "jti", "cnf"):
        if name in claims:
            answer[name] = claims[name]
    return answer


def _visible_to(caller: ClientRecord, claims: dict[str, Any]) -> bool:
    """Whether ``caller`` may learn about the token with ``claims`` (RFC 7662 §4).

    With the right ``audience``: only a token meant for one of the caller's audiences
    (an API asks about the tokens presented to it, not about others'); ``any``: every
    token. Anything else is answered as an inactive token, which tells nothing.
    """
    if caller.introspection == INTROSPECT_ANY:
        return True
    if caller.introspection != INTROSPECT_AUDIENCE:
        return False
    audience = claims.get("aud")
    audiences = [audience] if isinstance(audience, str) else audience
    return isinstance(audiences, list) and any(a in caller.audiences for a in audiences)


def _revoke(
    ctx: ServerContext,
    authorization: str | None,
    params: FormParams,
    address: str,
    certificate: ClientCertificate | None = None,
) -> None:
    client = authenticate_client(ctx, authorization, params, address, certificate=certificate)
    claims = read_own_token(_token_param(params), keys=ctx.keys, issuer=ctx.issuer)
    # RFC 7009 §2.2: unknown and invalid tokens get 200 too. A token of another client is
    # left alone, and answered the same way, so the endpoint is no oracle for other tokens.
    if claims is not None and claims["client_id"] == client.client_id:
        ctx.revocations.revoke(claims["jti"], datetime.fromtimestamp(claims["exp"], timezone.utc))
        announce(claims["jti"])
        audit("token_revoked", client_id=client.client_id, jti=claims["jti"])


async def introspection_endpoint(request: Request) -> Response:
    ctx: ServerContext = request.app.state.ctx
    try:
        params = await read_form(request, ctx.settings.max_body_bytes)
        answer = functools.partial(
            _introspect,
            ctx,
            request.headers.get("authorization"),
            params,
            client_address(request),
            presented_certificate(request.scope),
        )
        if reads_are_local(ctx):
            result = answer()
        else:
            result = await anyio.to_thread.run_sync(answer)
    except (OAuthError, RateLimited) as error:
        return error_response(error, issuer=ctx.issuer, basic=uses_basic(request))
    return json_response(result)


async def revocation_endpoint(request: Request) -> Response:
    ctx: ServerContext = request.app.state.ctx
    try:
        params = await read_form(request, ctx.settings.max_body_bytes)
        await anyio.to_thread.run_sync(
            _revoke,
            ctx,
            request.headers.get("authorization"),
            params,
            client_address(request),
            presented_certificate(request.scope),
        )
    except (OAuthError, RateLimited) as error:
        return error_response(error, issuer=ctx.issuer, basic=uses_basic(request))
    return Response(status_code=200, headers={"Cache-Control": "no-store"})
