"""Initial access tokens (RFC 7591 §3) and registration access tokens (RFC 7592).

An **initial access token** lets its holder register clients at ``/register``, with
at most the scopes and audiences it names. It is a JWT this server signs (type
``authkestra-registration+jwt``, so it can never pass for an access token), for the
registration endpoint, with its limits in the ``authkestra_registration`` claim; every
instance checks it with the published keys, and it ends at its ``exp`` (or when the
key that signed it is withdrawn). The operator makes one with the admin API
(``POST /admin/registration-tokens``) or ``authkestra registration-tokens create``.

A **registration access token** is handed to each client registered that way, once:
256 random bits, of which the store keeps a keyed hash. It lets the client read,
narrow and delete its own registration at ``/register/{client_id}``.
"""

from __future__ import annotations

import dataclasses
import secrets
import time
from collections.abc import Sequence
from typing import Any

from .keys import KeyRing
from .token_check import read_signed

__all__ = [
    "MAX_LIFETIME",
    "RegistrationGrant",
    "mint_initial_token",
    "new_registration_token",
    "read_initial_token",
]

TOKEN_TYPE = "authkestra-registration+jwt"
CLAIM = "authkestra_registration"
#: The longest an initial access token may live (30 days).
MAX_LIFETIME = 30 * 86400


@dataclasses.dataclass(frozen=True)
class RegistrationGrant:
    """What an initial access token allows: clients with these scopes and audiences at most."""

    scopes: tuple[str, ...]
    audiences: tuple[str, ...]
    expires_at: int
    jti: str


def mint_initial_token(
    keys: KeyRing,
    *,
    issuer: str,
    endpoint: str,
    scopes: Sequence[str],
    audiences: Sequence[str],
    lifetime: int,
) -> tuple[str, RegistrationGrant]:
    """A new initial access token for ``endpoint`` (the registration endpoint's URL)."""
    if not 1 <= lifetime <= MAX_LIFETIME:
        raise ValueError(f"an initial access token lives 1 to {MAX_LIFETIME} seconds")
    now = int(time.time())
    grant = RegistrationGrant(
        tuple(dict.fromkeys(scopes)), tuple(dict.fromkeys(audiences)), now + lifetime,
        secrets.token_urlsafe(16),
    )  # fmt: skip
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": endpoint,
        "iat": now,
        "exp": grant.expires_at,
        "jti": grant.jti,
        CLAIM: {"scope": " ".join(grant.scopes), "audience": list(grant.audiences)},
    }
    return keys.sign(claims, typ=TOKEN_TYPE), grant


def read_initial_token(
    token: str, *, keys: KeyRing, issuer: str, endpoint: str
) -> RegistrationGrant | None:
    """What ``token`` allows, if it is a live initial access token of this server for
    ``endpoint``; None otherwise (never raises)."""
    claims = read_signed(token, keys=keys, issuer=issuer, typ=TOKEN_TYPE)
    if claims is None or claims.get("aud") != endpoint:
        return None
    limits = claims.get(CLAIM)
    if not isinstance(limits, dict):
        return None
    scope, audience = limits.get("scope"), limits.get("audience")
    if not isinstance(scope, str) or not isinstance(audience, list):
        return None
    if not all(isinstance(a, str) for a in audience):
        return None
    return RegistrationGrant(tuple(scope.split()), tuple(audience), claims["exp"], claims["jti"])


def new_registration_token() -> str:
    """A registration access token: 256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)
