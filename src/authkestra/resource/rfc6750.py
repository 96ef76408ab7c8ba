"""RFC 6750 §3: how a resource server says no (status, WWW-Authenticate, JSON body)."""

from __future__ import annotations

import re

from ..errors import AuthError, InsufficientScope, InvalidToken
from .dpop import DPOP_ALGORITHMS, InvalidDPoPProof

__all__ = ["authorization_token", "bearer_token", "challenge", "error_status_and_body", "refusal"]

_UNSAFE = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]")


def _quoted(value: str) -> str:
    # RFC 6750 §3: error_description and scope are restricted to printable ASCII without " and \.
    return _UNSAFE.sub("", value)[:200]


def challenge(
    error: AuthError | None,
    *,
    realm: str | None = None,
    required_scopes: tuple[str, ...] = (),
    scheme: str = "Bearer",
) -> str:
    """The ``WWW-Authenticate`` header value for ``error`` (None: no token was presented).

    ``scheme`` is the one the request used (``Bearer`` or ``DPoP``); a bad DPoP proof
    is always answered ``DPoP error="invalid_dpop_proof"`` (RFC 9449 §7.1).
    """
    if isinstance(error, InvalidDPoPProof):
        scheme = "DPoP"
    params = []
    if realm:
        params.append(f'realm="{_quoted(realm)}"')
    if isinstance(error, InsufficientScope):
        params.append('error="insufficient_scope"')
        scopes = error.required_scopes or required_scopes
        if scopes:
            params.append(f'scope="{_quoted(" ".join(scopes))}"')
    elif isinstance(error, InvalidToken):
        code = "invalid_dpop_proof" if isinstance(error, InvalidDPoPProof) else "invalid_token"
        params.append(f'error="{code}"')
        params.append(f'error_description="{_quoted(error.message)}"')
    if scheme == "DPoP":
        params.append(f'algs="{" ".join(DPOP_ALGORITHMS)}"')
    return scheme + (" " + ", ".join(params) if params else "")


def error_status_and_body(error: AuthError) -> tuple[int, dict[str, str]]:
    """HTTP status and JSON body: 401 invalid_token, 403 insufficient_scope, 503 otherwise."""
    if isinstance(error, InsufficientScope):
        body = {"error": "insufficient_scope", "error_description": error.message}
        if error.required_scopes:
            body["scope"] = " ".join(error.required_scopes)
        return 403, body
    if isinstance(error, InvalidToken):
        code = "invalid_dpop_proof" if isinstance(error, InvalidDPoPProof) else "invalid_token"
        return 401, {"error": code, "error_description": error.message}
    # The issuer's keys or introspection endpoint could not be reached: not the caller's fault.
    return 503, {
        "error": "temporarily_unavailable",
        "error_description": "cannot verify tokens right now",
    }


def authorization_token(authorization: str | None) -> tuple[str, str] | None:
    """(scheme, token) of an ``Authorization: Bearer|DPoP <token>`` header, or None.

    The scheme comes back as ``Bearer`` or ``DPoP`` whatever its case (RFC 9449 §7.1).
    """
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    canonical = {"bearer": "Bearer", "dpop": "DPoP"}.get(scheme.lower())
    if canonical is None or not token:
        return None
    return canonical, token


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None (RFC 6750 §2.1)."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


def refusal(
    error: AuthError | None,
    *,
    realm: str | None = None,
    required_scopes: tuple[str, ...] = (),
    scheme: str = "Bearer",
) -> tuple[int, dict[str, str], dict[str, str]]:
    """(status, JSON body, headers) refusing a request; ``error`` None means no token was sent."""
    if error is None:
        status, body = (
            401,
            {"error": "invalid_request", "error_description": "a bearer token is required"},
        )
    else:
        status, body = error_status_and_body(error)
    headers = {}
    if status in (401, 403):
        headers["WWW-Authenticate"] = challenge(
            error, realm=realm, required_scopes=required_scopes, scheme=scheme
        )
    return status, body, headers
