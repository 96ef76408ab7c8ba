"""``POST /token``: the Client Credentials grant."""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response

from ...errors import OAuthError, RateLimited
from ..context import ServerContext
from ..grant import issue_token
from ..oauth_request import FormParams, client_credentials
from ._common import (
    authenticate_client,
    client_address,
    error_response,
    json_response,
    read_form,
    uses_basic,
)

__all__ = ["token_endpoint"]


def _token(
    ctx: ServerContext, authorization: str | None, params: FormParams, address: str
) -> dict[str, Any]:
    client = authenticate_client(ctx, authorization, params, address)
    return issue_token(
        client, params, issuer=ctx.issuer, keys=ctx.keys, default_ttl=ctx.settings.default_token_ttl
    )


def _in_memory(ctx: ServerContext, authorization: str | None, params: FormParams) -> bool:
    """True when answering needs no I/O: the client and the keys are cached, no Redis.

    Never for a client assertion: its jti is recorded (store or Redis), and its keys
    may have to be fetched from the client's jwks_uri.
    """
    if ctx.redis is not None or not ctx.keys.is_fresh():
        return False
    try:
        credentials = client_credentials(authorization, params)
    except OAuthError:
        return True  # refused before any lookup
    if credentials.assertion is not None:
        return False
    return ctx.clients.is_cached(credentials.client_id)


async def token_endpoint(request: Request) -> Response:
    ctx: ServerContext = request.app.state.ctx
    try:
        params = await read_form(request, ctx.settings.max_body_bytes)
        args = (ctx, request.headers.get("authorization"), params, client_address(request))
        if _in_memory(ctx, args[1], params):
            # Pure CPU work (an HMAC and a signature): a worker thread would only add a hop.
            result = _token(*args)
        else:
            # The store or Redis will be read: keep that blocking I/O off the event loop.
            result = await anyio.to_thread.run_sync(_token, *args)
    except (OAuthError, RateLimited) as error:
        return error_response(error, issuer=ctx.issuer, basic=uses_basic(request))
    return json_response(result)
