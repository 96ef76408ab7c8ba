"""When a token should be renewed, and until when it may be used."""

from __future__ import annotations

import random
from collections.abc import Callable

from .._jose.compact import peek_claims
from ..cache.base import CachedToken
from ..token import Token

__all__ = ["MAX_EXPIRY_MARGIN", "peek_jwt_expiry", "plan_lifetime"]

#: The most a token's usable life is cut short by, for clock skew and transit.
MAX_EXPIRY_MARGIN = 30.0
#: Renewal starts at a random point in this fraction of the lifetime.
REFRESH_WINDOW = (0.75, 0.85)


def peek_jwt_expiry(access_token: str) -> float | None:
    """The ``exp`` claim of a JWT access token, unverified, or None.

    Used only to schedule renewal when the server sent no ``expires_in``; the
    token's validity is for the resource server to check, not the client.
    """
    claims = peek_claims(access_token)
    exp = claims.get("exp") if claims is not None else None
    if isinstance(exp, bool) or not isinstance(exp, (int, float)):
        return None
    return float(exp)


def plan_lifetime(
    token: Token,
    obtained_at: float,
    *,
    default_ttl: float,
    rng: Callable[[], float] = random.random,
) -> CachedToken:
    """Decide renewal and expiry for a token obtained at ``obtained_at`` (UNIX seconds).

    The lifetime is ``expires_in``, else the JWT's ``exp``, else ``default_ttl``
    -- never "forever". The usable life ends ``min(30 s, 10%)`` before the
    lifetime does, so a 5-second token is used for 4.5 s and a 1-hour token
    for 59.5 minutes; renewal starts at 75-85% of the lifetime, jittered so a
    fleet does not renew in lockstep.
    """
    lifetime: float
    if token.expires_in is not None:
        lifetime = float(token.expires_in)
    else:
        exp = peek_jwt_expiry(token.access_token)
        lifetime = exp - obtained_at if exp is not None and exp > obtained_at else default_ttl
    margin = min(MAX_EXPIRY_MARGIN, lifetime * 0.1)
    low, high = REFRESH_WINDOW
    expires_at = obtained_at + lifetime - margin
    refresh_after = min(obtained_at + lifetime * (low + (high - low) * rng()), expires_at)
    return CachedToken(token, obtained_at, refresh_after, expires_at)
