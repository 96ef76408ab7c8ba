"""``POST /token``: the Client Credentials grant."""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response

from ...errors import OAuthError, RateLimited
from ..context import ServerContext
from ..grant import issue_token
from ..oauth_request import FormParams
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


async def token_endpoint(request: Request) -> Response:
    ctx: ServerContext = request.app.state.ctx
    try:
        params = await read_form(request, ctx.settings.max_body_bytes)
        result = await anyio.to_thread.run_sync(
            _token, ctx, request.headers.get("authorization"), params, client_address(request)
        )
    except (OAuthError, RateLimited) as error:
        return error_response(error, issuer=ctx.issuer, basic=uses_basic(request))
    return json_response(result)
