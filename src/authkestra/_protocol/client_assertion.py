"""Client assertions (RFC 7523 §2.2): authenticating with a signed JWT instead of a secret.

``private_key_jwt`` signs with the client's private key; ``client_secret_jwt``
with HMAC-SHA256 under the client secret. Each attempt gets a fresh assertion
(a new ``jti``), retries included, so a server that remembers ``jti`` values
never sees one twice. Signing is joserfc's; nothing here is hand-made JOSE.
"""

from __future__ import annotations

import dataclasses
import secrets
from typing import Any

from ..errors import ClientAssertionError, ConfigError

__all__ = [
    "ASSERTION_LIFETIME",
    "EXPIRY_MARGIN",
    "JWT_BEARER",
    "AssertionKey",
    "client_assertion",
    "platform_assertion_expiry",
]

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: Assertions are good for one minute: enough for a slow network, short for a thief.
ASSERTION_LIFETIME = 60
#: A platform's assertion expiring sooner than this is not sent: it could expire on the way.
EXPIRY_MARGIN = 10
#: The longest platform assertion read (Kubernetes tokens are about 1 KiB).
MAX_ASSERTION_LENGTH = 16_384


@dataclasses.dataclass(frozen=True, repr=False)
class AssertionKey:
    """A parsed signing key for assertions: the joserfc key, its algorithm and key id."""

    key: Any
    alg: str
    kid: str | None = None

    def __repr__(self) -> str:
        return f"AssertionKey(alg={self.alg!r}, kid={self.kid!r})"


def _signing() -> Any:
    try:
        from .._jose import signing
    except ImportError:  # pragma: no cover - depends on the install
        raise ConfigError(
            "JWT client authentication needs joserfc: pip install 'authkestra[keys]'"
        ) from None
    return signing


def secret_key(secret: str) -> AssertionKey:
    """The HS256 key ``client_secret_jwt`` signs with: the client secret itself."""
    from .._jose.keys import hmac_key

    return AssertionKey(hmac_key(secret), "HS256")


def client_assertion(
    signer: AssertionKey,
    *,
    client_id: str,
    audience: str,
    now: int,
    lifetime: int = ASSERTION_LIFETIME,
) -> str:
    """A signed assertion: iss = sub = client id; aud, iat, exp and a new jti."""
    signing = _signing()
    header: dict[str, Any] = {"alg": signer.alg, "typ": "JWT"}
    if signer.kid:
        header["kid"] = signer.kid
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "iat": now,
        "exp": now + lifetime,
        "jti": secrets.token_urlsafe(24),
    }
    return str(signing.sign_jwt(header, claims, signer.key))


def platform_assertion_expiry(assertion: str, where: str) -> float | None:
    """The ``exp`` of an assertion a platform issued, read without checking anything else
    (the authorization server checks it), or None when it has none.

    A value that is not a JWT is a :class:`ClientAssertionError` naming ``where`` it
    came from, never quoting it.
    """
    from .._jose.claims import ClaimError, claim_time
    from .._jose.compact import MalformedJWS, parse_compact

    try:
        claims = parse_compact(assertion, max_length=MAX_ASSERTION_LENGTH).claims
    except MalformedJWS as exc:
        raise ClientAssertionError(
            f"the client assertion from {where} is not a JWT: {exc.describe('it', 'its')}"
        ) from None
    if "exp" not in claims:
        return None
    try:
        return claim_time(claims["exp"], "exp")
    except ClaimError:
        raise ClientAssertionError(
            f"the client assertion from {where} has an exp that is not a time"
        ) from None
