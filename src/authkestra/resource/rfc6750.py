"""RFC 6750 §3: how a resource server says no (status, WWW-Authenticate, JSON body)."""

from __future__ import annotations

import re

from ..errors import AuthError, InsufficientScope, InvalidToken

__all__ = ["bearer_token", "challenge", "error_status_and_body", "refusal"]

_UNSAFE = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]")


def _quoted(value: str) -> str:
    # RFC 6750 §3: error_description and scope are restricted to printable ASCII without " and \.
    return _UNSAFE.sub("", value)[:200]


def challenge(
    error: AuthError | None, *, realm: str | None = None, required_scopes: tuple[str, ...] = ()
) -> str:
    """The ``WWW-Authenticate`` header value for ``error`` (None: no token was presented)."""
    params = []
    if realm:
        params.append(f'realm="{_quoted(realm)}"')
    if isinstance(error, InsufficientScope):
        params.append('error="insufficient_scope"')
        scopes = error.required_scopes or required_scopes
        if scopes:
            params.append(f'scope="{_quoted(" ".join(scopes))}"')
    elif isinstance(error, InvalidToken):
        params.append('error="invalid_token"')
        params.append(f'error_description="{_quoted(error.message)}"')
    return "Bearer" + (" " + ", ".join(params) if params else "")


def error_status_and_body(error: AuthError) -> tuple[int, dict[str, str]]:
    """HTTP status and JSON body: 401 invalid_token, 403 insufficient_scope, 503 otherwise."""
    if isinstance(error, InsufficientScope):
        body = {"error": "insufficient_scope", "error_description": error.message}
        if error.required_scopes:
            body["scope"] = " ".join(error.required_scopes)
        return 403, body
    if isinstance(error, InvalidToken):
        return 401, {"error": "invalid_token", "error_description": error.message}
    # The issuer's keys or introspection endpoint could not be reached: not the caller's fault.
    return 503, {
        "error": "temporarily_unavailable",
        "error_description": "cannot verify tokens right now",
    }


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
    error: AuthError | None, *, realm: str | None = None, required_scopes: tuple[str, ...] = ()
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
        headers["WWW-Authenticate"] = challenge(error, realm=realm, required_scopes=required_scopes)
    return status, body, headers
