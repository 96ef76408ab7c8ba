"""RFC 6750 §3: how a resource server says no (status, WWW-Authenticate, JSON body)."""

from __future__ import annotations

import re

from ..errors import AuthError, InsufficientScope, InvalidToken
from .dpop import DPOP_ALGORITHMS, InvalidDPoPProof

__all__ = [
    "POLICY_VIOLATION",
    "MalformedAuthorization",
    "authorization_token",
    "bearer_token",
    "challenge",
    "close_reason",
    "error_status_and_body",
    "refusal",
]

_UNSAFE = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]")
#: Whitespace as HTTP knows it: a b64token (RFC 6750 §2.1) has none.
_WHITESPACE = re.compile(r"[ \t]")

#: The WebSocket close code refusing a connection's token: policy violation (RFC 6455 §7.4.1).
POLICY_VIOLATION = 1008

#: The body of a 401 to a request without a token: no error code (RFC 6750 §3.1).
_NO_TOKEN_BODY = {"error_description": "this resource needs an access token"}


class MalformedAuthorization(AuthError):
    """The request's ``Authorization`` is malformed: RFC 6750 §3.1 ``invalid_request``, 400.

    More than one ``Authorization`` header, or a token with whitespace inside. This
    is the caller's fault, unlike :class:`~authkestra.errors.InvalidRequest`: that
    one is an answer from an OAuth endpoint (an introspection endpoint refusing us,
    say), which a resource server turns into a 503.
    """

    error = "invalid_request"
    status_code = 400

    def __init__(self, message: str, *, scheme: str = "Bearer") -> None:
        super().__init__(message)
        #: The scheme to answer with: ``DPoP`` when the malformed token came as one.
        self.scheme = scheme


def _quoted(value: str) -> str:
    # RFC 6750 §3: error_description and scope are restricted to printable ASCII without " and \.
    return _UNSAFE.sub("", value)[:200]


def challenge(
    error: AuthError | None,
    *,
    realm: str | None = None,
    required_scopes: tuple[str, ...] = (),
    scheme: str = "Bearer",
    resource_metadata: str | None = None,
) -> str:
    """The ``WWW-Authenticate`` header value for ``error`` (None: no token was presented).

    ``resource_metadata``: the URL of the API's RFC 9728 metadata, named in the challenge
    (§5.1) so a client can find the authorization server.

    ``scheme`` is the one the request used (``Bearer`` or ``DPoP``); a bad DPoP proof
    is always answered ``DPoP error="invalid_dpop_proof"`` (RFC 9449 §7.1).
    """
    if isinstance(error, InvalidDPoPProof):
        scheme = "DPoP"
    elif isinstance(error, MalformedAuthorization):
        scheme = error.scheme
    params = []
    if realm:
        params.append(f'realm="{_quoted(realm)}"')
    if isinstance(error, MalformedAuthorization):
        params.append('error="invalid_request"')
        params.append(f'error_description="{_quoted(error.message)}"')
    elif isinstance(error, InsufficientScope):
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
    if resource_metadata:
        params.append(f'resource_metadata="{_quoted(resource_metadata)}"')
    return scheme + (" " + ", ".join(params) if params else "")


def error_status_and_body(error: AuthError) -> tuple[int, dict[str, str]]:
    """HTTP status and JSON body.

    400 invalid_request, 401 invalid_token (or invalid_dpop_proof), 403
    insufficient_scope, 503 otherwise.
    """
    if isinstance(error, MalformedAuthorization):
        return 400, {"error": "invalid_request", "error_description": error.message}
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

    None for no header or another scheme (``Basic``, ...); :class:`MalformedAuthorization`
    for the scheme without a token, or a token with whitespace inside (a b64token,
    RFC 6750 §2.1, has none; spaces between the scheme and the token are tolerated).
    The scheme comes back as ``Bearer`` or ``DPoP`` whatever its case (RFC 9449 §7.1).
    """
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.lstrip(" ")
    canonical = {"bearer": "Bearer", "dpop": "DPoP"}.get(scheme.lower())
    if canonical is None:
        return None
    if not token:
        # RFC 6750 §3.1: a malformed request, not a missing token.
        raise MalformedAuthorization(
            f"the Authorization header names the {canonical} scheme but holds no token",
            scheme=canonical,
        )
    if _WHITESPACE.search(token):
        raise MalformedAuthorization(
            f"the {canonical} token in the Authorization header has whitespace inside",
            scheme=canonical,
        )
    return canonical, token


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None (RFC 6750 §2.1).

    Parsed as by :func:`authorization_token` (so MalformedAuthorization for a token
    with whitespace inside); a ``DPoP`` token is no bearer token: None.
    """
    presented = authorization_token(authorization)
    if presented is None or presented[0] != "Bearer":
        return None
    return presented[1]


def refusal(
    error: AuthError | None,
    *,
    realm: str | None = None,
    required_scopes: tuple[str, ...] = (),
    scheme: str = "Bearer",
    resource_metadata: str | None = None,
) -> tuple[int, dict[str, str], dict[str, str]]:
    """(status, JSON body, headers) refusing a request; ``error`` None means no token was sent.

    No token: 401 and a challenge and body without an error code (RFC 6750 §3.1).
    """
    if error is None:
        status, body = 401, dict(_NO_TOKEN_BODY)
    else:
        status, body = error_status_and_body(error)
    headers = {}
    if status in (400, 401, 403):
        headers["WWW-Authenticate"] = challenge(
            error,
            realm=realm,
            required_scopes=required_scopes,
            scheme=scheme,
            resource_metadata=resource_metadata,
        )
    return status, body, headers


def close_reason(error: AuthError | None) -> str:
    """The reason of a WebSocket close refusing ``error`` (None: no token was sent).

    The refusal's error code and description, as printable ASCII within the 123
    bytes a close frame allows (RFC 6455 §5.5).
    """
    _, body, _ = refusal(error)
    description = body.get("error_description", "")
    text = f"{body['error']}: {description}" if "error" in body else description
    return _quoted(text)[:123]
