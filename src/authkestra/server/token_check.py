"""Reading back a token this server issued (introspection and revocation)."""

from __future__ import annotations

import time
from typing import Any

from .._jose.claims import ClaimError, TimeRules
from .._jose.compact import MalformedJWS, parse_compact
from .._jose.signing import verify_signature
from .keys import KeyRing

__all__ = ["read_own_token", "read_signed"]

MAX_TOKEN_CHARS = 8192
#: Our own tokens, read back: expired is expired (no leeway: the clock is ours).
_TIMES = TimeRules(leeway=0, names=("exp",))


def read_own_token(token: str, *, keys: KeyRing, issuer: str) -> dict[str, Any] | None:
    """The claims of a valid, unexpired access token signed by this server, or None.

    Never raises: anything that is not such a token -- garbage, another
    issuer's, a forged one, an expired one -- is simply not ours.
    """
    claims = read_signed(token, keys=keys, issuer=issuer, typ="at+jwt")
    if claims is None or not isinstance(claims.get("client_id"), str):
        return None
    return claims


def read_signed(token: str, *, keys: KeyRing, issuer: str, typ: str) -> dict[str, Any] | None:
    """The claims of an unexpired JWT of type ``typ`` signed by this server (``iss``,
    integer ``exp`` and a ``jti`` checked), or None. Never raises."""
    try:
        jws = parse_compact(token, max_length=MAX_TOKEN_CHARS)
    except MalformedJWS:
        return None
    header, claims = jws.header, jws.claims
    kid = header.get("kid")
    if header.get("typ") != typ or not isinstance(kid, str):
        return None
    if not keys.signature_checked(token):
        found = keys.verification_key(kid)
        if found is None:
            return None
        alg, key = found
        if header.get("alg") != alg or not verify_signature(
            alg, jws.signing_input, jws.signature, key
        ):
            return None
        keys.remember_checked(token)
    try:
        _TIMES.check(claims, time.time())
    except ClaimError:
        return None
    if (
        claims.get("iss") != issuer
        or type(claims.get("exp")) is not int
        or not isinstance(claims.get("jti"), str)
    ):
        return None
    return claims
