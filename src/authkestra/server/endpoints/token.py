"""``POST /token``: the Client Credentials grant and token exchange (RFC 8693), tokens bound
by DPoP or mTLS (RFC 9449, 8705)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response

from ..._protocol.token_exchange import TOKEN_EXCHANGE
from ...errors import OAuthError, RateLimited
from ...tls import ClientCertificate, presented_certificate
from ..context import ServerContext
from ..dpop import UseDPoPNonce
from ..grant import issue_token
from ..logs import authenticated_client
from ..metrics import count_token_request
from ..oauth_request import ClientCredentials, FormParams, client_credentials, single
from ..token_exchange import exchange_token
from ..tracing import token_span
from ._common import (
    THROTTLED_ERROR,
    authenticate_client,
    client_address,
    error_response,
    json_response,
    read_form,
    uses_basic,
)

__all__ = ["token_endpoint"]


def _token(
    ctx: ServerContext,
    authorization: str | None,
    params: FormParams,
    address: str,
    *,
    dpop: Sequence[str] = (),
    credentials: ClientCredentials | None = None,
    certificate: ClientCertificate | None = None,
) -> dict[str, Any]:
    client = authenticate_client(
        ctx, authorization, params, address, credentials, certificate=certificate
    )
    jkt = None
    if dpop and ctx.dpop is not None:
        # After client authentication: an unauthenticated caller writes no jti anywhere.
        jkt = ctx.dpop.verify(dpop, htm="POST")
    # RFC 8705 §3: a token asked for over a connection with a client certificate is
    # bound to it, whichever way the client authenticated.
    binds = ctx.mtls is not None and ctx.mtls.bind_tokens
    x5t = certificate.thumbprint if certificate is not None and binds else None
    if single(params, "grant_type") == TOKEN_EXCHANGE:
        return exchange_token(ctx, client, params, jkt=jkt, x5t=x5t)
    return issue_token(
        client,
        params,
        issuer=ctx.issuer,
        keys=ctx.keys,
        default_ttl=ctx.settings.default_token_ttl,
        jkt=jkt,
        x5t=x5t,
    )


def _in_memory(
    ctx: ServerContext, authorization: str | None, params: FormParams
) -> tuple[bool, ClientCredentials | None]:
    """Whether answering needs no I/O (client and keys cached, no Redis), and the credentials.

    Never for a client assertion: its jti is recorded (store or Redis), and its keys
    may have to be fetched from the client's jwks_uri. The credentials read here
    are handed on, so the request's credentials are parsed once.
    """
    if ctx.redis is not None or not ctx.keys.is_fresh():
        return False, None
    if params.get("grant_type") == [TOKEN_EXCHANGE]:
        return False, None  # the subject token's revocation is looked up, its issuer's keys too
    try:
        credentials = client_credentials(authorization, params)
    except OAuthError:
        return True, None  # refused before any lookup (read again, to count the failure)
    if credentials.assertion is not None:
        return False, credentials
    return ctx.clients.is_cached(credentials.client_id), credentials


async def token_endpoint(request: Request) -> Response:
    with token_span(request.app) as span:
        response, outcome = await _answer(request)
        client_id = authenticated_client()
        count_token_request(client_id, outcome)
        if span is not None:
            span.set_attribute("authkestra.outcome", outcome)
            if client_id is not None:
                span.set_attribute("authkestra.client_id", client_id)
        return response


async def _answer(request: Request) -> tuple[Response, str]:
    """The answer to a token request, and its outcome: ``issued`` or the error code."""
    ctx: ServerContext = request.app.state.ctx
    dpop = request.headers.getlist("dpop")
    nonce_headers: dict[str, str] = {}
    if ctx.dpop is not None and ctx.dpop.require_nonce:
        # RFC 9449 §8.2: a fresh nonce on every answer, so clients keep theirs current.
        nonce_headers["DPoP-Nonce"] = ctx.dpop.nonces.current()
    try:
        params = await read_form(request, ctx.settings.max_body_bytes)
        authorization = request.headers.get("authorization")
        in_memory, credentials = (False, None) if dpop else _in_memory(ctx, authorization, params)
        answer = functools.partial(
            _token,
            ctx,
            authorization,
            params,
            client_address(request),
            dpop=dpop,
            credentials=credentials,
            certificate=presented_certificate(request.scope),
        )
        if in_memory:
            # Pure CPU work (an HMAC and a signature): a worker thread would only add a hop.
            result = answer()
        else:
            # The store or Redis will be read (a DPoP proof's jti is always recorded):
            # keep that blocking I/O off the event loop.
            result = await anyio.to_thread.run_sync(answer)
    except (OAuthError, RateLimited) as error:
        outcome = error.error if isinstance(error, OAuthError) else THROTTLED_ERROR
        response = error_response(error, issuer=ctx.issuer, basic=uses_basic(request))
        if isinstance(error, UseDPoPNonce) and ctx.dpop is not None:
            nonce_headers["DPoP-Nonce"] = ctx.dpop.nonces.current()
        response.headers.update(nonce_headers)
        return response, outcome
    return json_response(result, headers=nonce_headers), "issued"
