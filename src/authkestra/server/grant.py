"""The Client Credentials grant (RFC 6749 §4.4) and the JWT access tokens it issues (RFC 9068)."""

from __future__ import annotations

import secrets
import time
from typing import Any

from .._protocol.scope import is_scope_token, split_scope
from ..errors import InvalidRequest, InvalidScope, InvalidTarget, UnsupportedGrantType
from .keys import KeyRing
from .logs import audit
from .oauth_request import FormParams, single
from .store import ClientRecord

__all__ = ["issue_token", "requested_audiences"]


def _granted_scopes(client: ClientRecord, requested: str | None) -> tuple[str, ...]:
    if requested is None:
        return client.default_scopes if client.default_scopes is not None else client.scopes
    scopes = tuple(dict.fromkeys(split_scope(requested)))
    for scope in scopes:
        if not is_scope_token(scope) or scope not in client.scopes:
            raise InvalidScope(
                "scope not allowed",
                status_code=400,
                error_description="a requested scope is not allowed for this client",
            )
    return scopes


def requested_audiences(client: ClientRecord, params: FormParams, issuer: str) -> tuple[str, ...]:
    """The audiences asked for (each one of the client's), or the client's; invalid_target."""
    # RFC 8707 resource and the common audience parameter both name the API the token is for.
    requested = tuple(dict.fromkeys(params.get("resource", []) + params.get("audience", [])))
    if not requested:
        return client.audiences or (issuer,)
    for target in requested:
        if target not in client.audiences:
            raise InvalidTarget(
                "target not allowed",
                status_code=400,
                error_description="a requested resource or audience is not allowed for this client",
            )
    return requested


def issue_token(
    client: ClientRecord,
    params: FormParams,
    *,
    issuer: str,
    keys: KeyRing,
    default_ttl: int,
    jkt: str | None = None,
    x5t: str | None = None,
) -> dict[str, Any]:
    """The RFC 6749 §5.1 response for an authenticated client's token request.

    With ``jkt`` (the thumbprint of a checked DPoP proof's key) the token is bound to
    that key: ``cnf.jkt`` in the JWT and ``token_type: DPoP`` (RFC 9449 §5, §6.1).
    With ``x5t`` (the SHA-256 thumbprint of the client's TLS certificate) it is bound
    to that certificate: ``cnf["x5t#S256"]`` (RFC 8705 §3.1).
    """
    grant_type = single(params, "grant_type")
    if grant_type is None:
        # RFC 6749 §5.2: a missing required parameter is an invalid_request.
        raise InvalidRequest(
            "grant_type missing",
            status_code=400,
            error_description="the grant_type parameter is required",
        )
    if grant_type != "client_credentials":
        raise UnsupportedGrantType(
            "unsupported grant type",
            status_code=400,
            error_description="this server's grants are client_credentials and"
            " urn:ietf:params:oauth:grant-type:token-exchange",
        )
    scopes = _granted_scopes(client, single(params, "scope"))
    audiences = requested_audiences(client, params, issuer)
    ttl = client.token_ttl or default_ttl
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": client.client_id,
        "client_id": client.client_id,
        "aud": audiences[0] if len(audiences) == 1 else list(audiences),
        "iat": now,
        "exp": now + ttl,
        "jti": secrets.token_urlsafe(16),
    }
    if scopes:
        claims["scope"] = " ".join(scopes)
    cnf: dict[str, str] = {}
    if jkt is not None:
        cnf["jkt"] = jkt
    if x5t is not None:
        cnf["x5t#S256"] = x5t
    if cnf:
        claims["cnf"] = cnf
    response: dict[str, Any] = {
        "access_token": keys.sign(claims),
        "token_type": "Bearer" if jkt is None else "DPoP",
        "expires_in": ttl,
    }
    if scopes:
        response["scope"] = " ".join(scopes)
    audit(
        "token_issued",
        client_id=client.client_id,
        scope=claims.get("scope"),
        aud=claims["aud"],
        jti=claims["jti"],
        exp=claims["exp"],
        bound_to="dpop" if jkt is not None else ("certificate" if x5t is not None else None),
    )
    return response
