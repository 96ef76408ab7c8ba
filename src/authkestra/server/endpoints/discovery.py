"""Metadata (RFC 8414), the JWKS, and the revocation list."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response

from ..._jose.algorithms import ASYMMETRIC, HMAC
from ..._protocol.revocations import METADATA_MEMBER
from ..._protocol.token_exchange import TOKEN_EXCHANGE
from ..context import ServerContext
from ..dpop import DPOP_SIGNING_ALGS
from ..registration import SUPPORTED_AUTH_METHODS

__all__ = ["jwks_endpoint", "metadata_endpoint", "revocation_list_endpoint"]

#: What client assertions (private_key_jwt, client_secret_jwt) may be signed with.
AUTH_SIGNING_ALGS = [*ASYMMETRIC, *HMAC]


def metadata(ctx: ServerContext) -> dict[str, Any]:
    issuer = ctx.issuer
    tls = ctx.settings.tls_cert is not None
    # RFC 8705 §2: the certificate methods only when the server terminates TLS (certificates
    # can reach it).
    methods = [m.value for m in SUPPORTED_AUTH_METHODS if tls or not m.uses_tls]
    document: dict[str, Any] = {
        "issuer": issuer,
        "token_endpoint": ctx.settings.endpoint("/token"),
        "jwks_uri": ctx.settings.endpoint("/jwks.json"),
        "introspection_endpoint": ctx.settings.endpoint("/introspect"),
        "revocation_endpoint": ctx.settings.endpoint("/revoke"),
        METADATA_MEMBER: ctx.settings.endpoint("/revocations"),
        "grant_types_supported": ["client_credentials", TOKEN_EXCHANGE],
        "response_types_supported": [],
        "token_endpoint_auth_methods_supported": methods,
        "token_endpoint_auth_signing_alg_values_supported": AUTH_SIGNING_ALGS,
        "introspection_endpoint_auth_methods_supported": methods,
        "introspection_endpoint_auth_signing_alg_values_supported": AUTH_SIGNING_ALGS,
        "revocation_endpoint_auth_methods_supported": methods,
        "revocation_endpoint_auth_signing_alg_values_supported": AUTH_SIGNING_ALGS,
        "access_token_signing_alg_values_supported": ctx.keys.algorithms(),
        "dpop_signing_alg_values_supported": list(DPOP_SIGNING_ALGS),
    }
    if ctx.settings.registration:
        document["registration_endpoint"] = ctx.settings.endpoint("/register")
    if tls:
        bind = ctx.mtls is not None and ctx.mtls.bind_tokens
        document["tls_client_certificate_bound_access_tokens"] = bind
    return document


async def metadata_endpoint(request: Request) -> Response:
    ctx: ServerContext = request.app.state.ctx
    body = await _from_memory(ctx, "metadata", lambda: _json(metadata(ctx)))
    return Response(body, media_type="application/json", headers=_METADATA_CACHE)


async def jwks_endpoint(request: Request) -> Response:
    ctx: ServerContext = request.app.state.ctx
    body = await _from_memory(ctx, "jwks", lambda: _json(ctx.keys.jwks()))
    # Short: a rotated-in key must reach resource servers soon.
    return Response(body, media_type="application/json", headers=_JWKS_CACHE)


async def revocation_list_endpoint(request: Request) -> Response:
    """The signed revocation list (see :mod:`..revocation_list`)."""
    ctx: ServerContext = request.app.state.ctx
    assert ctx.revocation_list is not None
    body = await anyio.to_thread.run_sync(ctx.revocation_list.document)
    return Response(body, media_type="application/jwt", headers=_REVOCATIONS_CACHE)


_METADATA_CACHE = {"Cache-Control": "public, max-age=300"}
#: As fresh as the verifiers poll it: a cache on the way must not hold a revocation back.
_REVOCATIONS_CACHE = {"Cache-Control": "public, max-age=1"}
_JWKS_CACHE = {"Cache-Control": "public, max-age=60"}


async def _from_memory(ctx: ServerContext, name: str, build: Callable[[], bytes]) -> bytes:
    """The document, rendered once per reading of the keys: from memory while they are
    fresh, else after reading them again (in a worker thread: the store may be remote)."""
    if ctx.keys.is_fresh():
        return ctx.keys.memo(name, build)
    return await anyio.to_thread.run_sync(ctx.keys.memo, name, build)


def _json(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()
