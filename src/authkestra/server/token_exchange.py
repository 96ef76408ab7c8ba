"""Token exchange (RFC 8693): a service trades the token it was called with for one to call on.

A client allowed the grant (its ``grant_types`` include
:data:`TOKEN_EXCHANGE`) sends ``subject_token`` -- an access token of this server,
or a token of a trusted issuer (:mod:`.federation`) -- with its type, and gets a
new access token of this server:

- about the same subject (``sub``), issued to the exchanging client (``client_id``);
- for an audience the client may have (``audience``/``resource``, each one of the
  client's audiences; none asked: the client's);
- with scopes that are neither wider than the subject token's nor than the
  client's (none asked: what both have); a trusted issuer's token carries no
  scopes of this server, so the client's bound them alone;
- never outliving the subject token;
- carrying ``act`` (§4.1): who acts for the subject -- the ``actor_token``'s
  subject if one is sent, else the exchanging client -- above any ``act`` the
  subject token already had (a chain of delegation).

The subject token must be valid now: a token of this server is checked as
introspection checks it (signature, expiry, not revoked, its client still
enabled); a trusted issuer's, as a federated assertion is (issuer, audience,
times, signature). Only access tokens are issued (``requested_token_type``
``access_token`` or ``jwt``, or none). A refusal is an OAuth error: the token
that was refused is never echoed.
"""

from __future__ import annotations

import dataclasses
import secrets
import time
from typing import TYPE_CHECKING, Any

from .._jose.compact import MalformedJWS, parse_compact
from .._protocol.scope import is_scope_token, split_scope
from .._protocol.token_exchange import (
    ACCESS_TOKEN_TYPE,
    TOKEN_EXCHANGE,
    TOKEN_TYPES,
)
from ..errors import InvalidGrant, InvalidRequest, InvalidScope, UnauthorizedClient
from .federation import FederatedRefusal
from .grant import requested_audiences
from .logs import audit
from .oauth_request import FormParams, single
from .token_check import MAX_TOKEN_CHARS, read_own_token

if TYPE_CHECKING:
    from .context import ServerContext
    from .store import ClientRecord

__all__ = ["exchange_token"]

#: How deep an ``act`` chain may grow (each exchange adds one).
MAX_ACT_DEPTH = 8


@dataclasses.dataclass(frozen=True)
class Party:
    """A subject or actor token, read and checked: who it is about, and its limits."""

    sub: str
    exp: float
    #: The scopes it carries (None: a trusted issuer's token, which carries none of ours).
    scopes: tuple[str, ...] | None
    act: dict[str, Any] | None


def exchange_token(
    ctx: ServerContext,
    client: ClientRecord,
    params: FormParams,
    *,
    jkt: str | None = None,
    x5t: str | None = None,
) -> dict[str, Any]:
    """The RFC 8693 §2.2 response for ``client``'s exchange request (blocking: it may read
    the store, Redis, or a trusted issuer's keys)."""
    if TOKEN_EXCHANGE not in client.grant_types:
        raise UnauthorizedClient(
            "token exchange not allowed",
            status_code=400,
            error_description="this client may not use the token-exchange grant",
        )
    requested = single(params, "requested_token_type")
    if requested is not None and requested not in TOKEN_TYPES:
        raise _invalid_request("requested_token_type: this server issues access tokens only")
    subject = _party(ctx, params, "subject_token")
    if subject is None:
        raise _invalid_request("subject_token and subject_token_type are required")
    if subject.act is not None and _depth(subject.act) >= MAX_ACT_DEPTH:
        raise InvalidGrant(
            "delegation chain too long",
            status_code=400,
            error_description=f"the subject_token has {MAX_ACT_DEPTH} actors already",
        )
    actor = _party(ctx, params, "actor_token")
    scopes = _scopes(client, subject, single(params, "scope"))
    audiences = requested_audiences(client, params, ctx.issuer)
    now = int(time.time())
    ttl = client.token_ttl or ctx.settings.default_token_ttl
    exp = min(now + ttl, int(subject.exp))
    if exp <= now:
        raise _invalid_grant()  # it expired while this was read
    act: dict[str, Any] = {"sub": actor.sub if actor is not None else client.client_id}
    if subject.act is not None:
        act["act"] = subject.act
    claims: dict[str, Any] = {
        "iss": ctx.issuer,
        "sub": subject.sub,
        "client_id": client.client_id,
        "aud": audiences[0] if len(audiences) == 1 else list(audiences),
        "iat": now,
        "exp": exp,
        "jti": secrets.token_urlsafe(16),
        "act": act,
    }
    if scopes:
        claims["scope"] = " ".join(scopes)
    cnf = {name: value for name, value in (("jkt", jkt), ("x5t#S256", x5t)) if value}
    if cnf:
        claims["cnf"] = cnf
    response: dict[str, Any] = {
        "access_token": ctx.keys.sign(claims),
        "issued_token_type": ACCESS_TOKEN_TYPE,
        "token_type": "Bearer" if jkt is None else "DPoP",
        "expires_in": exp - now,
    }
    if scopes:
        response["scope"] = " ".join(scopes)
    audit(
        "token_exchanged",
        client_id=client.client_id,
        subject=subject.sub,
        actor=act["sub"],
        scope=claims.get("scope"),
        aud=claims["aud"],
        jti=claims["jti"],
        exp=exp,
    )
    return response


def _invalid_request(description: str) -> InvalidRequest:
    return InvalidRequest("invalid token exchange", status_code=400, error_description=description)


def _invalid_grant(name: str = "subject_token") -> InvalidGrant:
    return InvalidGrant(
        f"{name} refused",
        status_code=400,
        error_description=f"the {name} is not a valid token of this server or a trusted issuer",
    )


def _party(ctx: ServerContext, params: FormParams, name: str) -> Party | None:
    """The ``subject_token`` or ``actor_token`` sent, checked; None if it was not sent."""
    token, kind = single(params, name), single(params, f"{name}_type")
    if token is None and kind is None:
        return None
    if token is None or kind is None:
        raise _invalid_request(f"{name} and {name}_type go together")
    if kind not in TOKEN_TYPES:
        raise _invalid_request(f"{name}_type: an access token or a JWT")
    party = _own(ctx, token) or _trusted(ctx, token)
    if party is None:
        raise _invalid_grant(name)
    return party


def _own(ctx: ServerContext, token: str) -> Party | None:
    """A token of this server, valid now (as introspection judges it), or None."""
    claims = read_own_token(token, keys=ctx.keys, issuer=ctx.issuer)
    if claims is None or ctx.revocations.is_revoked(claims["jti"]):
        return None
    owner = ctx.clients.lookup(claims["client_id"])
    if owner is None or not owner.enabled:
        return None
    sub = claims.get("sub")
    if not isinstance(sub, str):
        return None
    scope = claims.get("scope")
    act = claims.get("act")
    return Party(
        sub=sub,
        exp=float(claims["exp"]),
        scopes=tuple(split_scope(scope)) if isinstance(scope, str) else (),
        act=act if isinstance(act, dict) else None,
    )


def _trusted(ctx: ServerContext, token: str) -> Party | None:
    """A trusted issuer's token, valid now, or None."""
    federation = ctx.clients.federation
    if federation is None:
        return None
    try:
        jws = parse_compact(token, max_length=MAX_TOKEN_CHARS)
    except MalformedJWS:
        return None
    record = federation.issuer_of(jws.claims.get("iss"))
    sub = jws.claims.get("sub")
    if record is None or not isinstance(sub, str) or not sub:
        return None
    try:
        exp = federation.verify(record, jws)
    except FederatedRefusal as refusal:
        audit("exchange_token_refused", issuer_name=record.name, reason=str(refusal))
        return None
    return Party(sub=sub, exp=exp, scopes=None, act=None)


def _depth(act: dict[str, Any]) -> int:
    depth, current = 0, act.get("act")
    while isinstance(current, dict) and depth <= MAX_ACT_DEPTH:
        current = current.get("act")
        depth += 1
    return depth + 1


def _scopes(client: ClientRecord, subject: Party, requested: str | None) -> tuple[str, ...]:
    """Scopes neither wider than the subject token's nor than the client's."""
    allowed = [s for s in client.scopes if subject.scopes is None or s in subject.scopes]
    if requested is None:
        return tuple(allowed)
    scopes = tuple(dict.fromkeys(split_scope(requested)))
    if not all(is_scope_token(s) and s in allowed for s in scopes):
        raise InvalidScope(
            "scope not allowed",
            status_code=400,
            error_description="a requested scope is wider than the subject token's or the client's",
        )
    return scopes
