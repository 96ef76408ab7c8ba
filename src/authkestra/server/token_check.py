"""Reading back a token this server issued (introspection and revocation)."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError

from .._jose import jws_registry
from .keys import KeyRing

__all__ = ["read_own_token"]

MAX_TOKEN_CHARS = 8192


def _header(token: str) -> dict[str, Any] | None:
    try:
        segment = token.split(".", 1)[0]
        value = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, TypeError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def read_own_token(token: str, *, keys: KeyRing, issuer: str) -> dict[str, Any] | None:
    """The claims of a valid, unexpired token signed by this server, or None.

    Never raises: anything that is not such a token -- garbage, another
    issuer's, a forged one, an expired one -- is simply not ours.
    """
    if not token or len(token) > MAX_TOKEN_CHARS or token.count(".") != 2:
        return None
    header = _header(token)
    if header is None or header.get("typ") != "at+jwt" or not isinstance(header.get("kid"), str):
        return None
    found = keys.verification_key(header["kid"])
    if found is None:
        return None
    alg, key = found
    try:
        claims = jwt.decode(token, key, registry=jws_registry(alg)).claims
    except (JoseError, ValueError, TypeError, RecursionError):
        return None
    exp = claims.get("exp")
    if (
        claims.get("iss") != issuer
        or not isinstance(exp, int)
        or isinstance(exp, bool)
        or exp <= time.time()
        or not isinstance(claims.get("jti"), str)
        or not isinstance(claims.get("client_id"), str)
    ):
        return None
    return dict(claims)
