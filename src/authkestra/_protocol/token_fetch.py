"""One token request, end to end: read the secret, send with retries, interpret the answer."""

from __future__ import annotations

import dataclasses
import hmac
import logging

from .._json import parse_json_object
from ..errors import ClientAssertionError, InvalidClient, InvalidScope
from ..token import Token
from .actions import HttpRequest, HttpResponse, Operation, ReadSecret
from .client_assertion import (
    EXPIRY_MARGIN,
    AssertionKey,
    client_assertion,
    platform_assertion_expiry,
    secret_key,
)
from .client_auth import AuthMethod
from .context import ProtocolContext
from .dpop import DPoPState
from .responses import parse_token_response
from .retry import send_with_retries
from .token_request import TokenRequestSpec, build_token_request

__all__ = ["AssertionSettings", "read_platform_assertion", "request_token"]

logger = logging.getLogger("authkestra")


@dataclasses.dataclass(frozen=True)
class AssertionSettings:
    """How a JWT-authenticating client signs: its key (``private_key_jwt``) and audience.

    ``audience`` None means the token endpoint URL. ``from_platform``: the client
    signs nothing; the assertion is read from the credential source (a file the
    platform rewrites, a callable) for each request.
    """

    key: AssertionKey | None = None
    audience: str | None = None
    from_platform: bool = False


def request_token(
    spec: TokenRequestSpec,
    token_url: str,
    ctx: ProtocolContext,
    *,
    secret_rotates: bool,
    assertions: AssertionSettings | None = None,
    dpop: DPoPState | None = None,
) -> Operation[Token]:
    """Obtain a token for ``spec`` from ``token_url``.

    With ``dpop``, every attempt carries a fresh DPoP proof (RFC 9449) and a
    ``use_dpop_nonce`` answer is retried once with the nonce the server sent.

    When the server answers ``invalid_client`` and the secret comes from a
    source that can change (a file, a secrets manager), the source is read once
    more and, if it now gives another secret, the request is retried once: a
    rotated secret is picked up without a restart.
    """
    assertions = assertions or AssertionSettings()
    for name, value in spec.grant_fields:
        if name in ("subject_token", "actor_token"):
            ctx.redact.add(value)  # sent with this request: never echoed back in an error
    secret: str | None = None
    if assertions.from_platform:
        secret = yield from read_platform_assertion(ctx)
    elif spec.auth_method.needs_secret:
        secret = yield ReadSecret()
        ctx.redact.add(secret, client_id=spec.client_id)
    try:
        return (yield from _exchange(spec, token_url, secret, ctx, assertions, dpop=dpop))
    except InvalidScope as refused:
        raise _comma_hint(refused, spec.scopes) from None
    except InvalidClient:
        if secret is None or not secret_rotates:
            raise
        fresh: str
        if assertions.from_platform:
            fresh = yield from read_platform_assertion(ctx)
        else:
            fresh = yield ReadSecret()
            ctx.redact.add(fresh, client_id=spec.client_id)
        if hmac.compare_digest(fresh.encode(), secret.encode()):
            raise
        logger.info(
            "authkestra: invalid_client; the credential source has a new one, retrying once"
        )
        return (yield from _exchange(spec, token_url, fresh, ctx, assertions, dpop=dpop))


def _comma_hint(refused: InvalidScope, scopes: tuple[str, ...]) -> InvalidScope:
    """``refused``, saying so when a scope asked for holds a comma: ``"read,write"`` is one
    scope to the server (RFC 6749 §3.3 separates scopes with spaces)."""
    listed = [scope for scope in scopes if "," in scope]
    if not listed:
        return refused
    refused.message += (
        f" (the scope {listed[0]!r} has a comma: scopes are separated by spaces, so it is"
        " one scope; pass a list, or 'read write')"
    )
    refused.args = (refused.message,)
    return refused


def read_platform_assertion(ctx: ProtocolContext) -> Operation[str]:
    """The platform's current assertion, read from its source and fit to send.

    One expiring within :data:`EXPIRY_MARGIN` seconds is read once more (the platform
    may have renewed it since); if that one expires as soon, nothing is sent:
    :class:`ClientAssertionError`.
    """
    for attempt in (1, 2):
        assertion: str = yield ReadSecret()
        ctx.redact.add(assertion)
        expires = platform_assertion_expiry(assertion, "its source")
        left = None if expires is None else expires - ctx.wall_clock().timestamp()
        if left is None or left > EXPIRY_MARGIN:
            return assertion
        if attempt == 1:
            logger.info(
                "authkestra: the client assertion expires in %.0f s; reading it again", left
            )
    assert left is not None
    when = f"expired {-left:.0f} s ago" if left <= 0 else f"expires in {left:.0f} s"
    raise ClientAssertionError(
        f"the client assertion {when} and its source has no fresher one: is the platform"
        " renewing it (kubelet token projection, workload identity agent)?"
    )


def _assertion(
    spec: TokenRequestSpec,
    token_url: str,
    secret: str | None,
    ctx: ProtocolContext,
    assertions: AssertionSettings,
) -> str | None:
    """A fresh client assertion for one attempt, or None for the other methods."""
    if not spec.auth_method.uses_assertion:
        return None
    if assertions.from_platform:
        return secret  # the platform's, as read for this request
    if spec.auth_method is AuthMethod.CLIENT_SECRET_JWT:
        assert secret is not None
        key = secret_key(secret)
    else:
        assert assertions.key is not None
        key = assertions.key
    return client_assertion(
        key,
        client_id=spec.client_id,
        audience=assertions.audience or token_url,
        now=int(ctx.wall_clock().timestamp()),
    )


def _exchange(
    spec: TokenRequestSpec,
    token_url: str,
    secret: str | None,
    ctx: ProtocolContext,
    assertions: AssertionSettings,
    *,
    dpop: DPoPState | None,
) -> Operation[Token]:
    def make_request(deadline: float) -> HttpRequest:
        # Built per attempt: a retry carries a new assertion and DPoP proof (new jti values).
        request = build_token_request(
            spec,
            token_url,
            secret,
            deadline=deadline,
            max_body=ctx.max_body,
            user_agent=ctx.user_agent,
            assertion=_assertion(spec, token_url, secret, ctx, assertions),
        )
        if dpop is None:
            return request
        now = int(ctx.wall_clock().timestamp())
        dpop_header = ("DPoP", dpop.proof("POST", token_url, now=now))
        return dataclasses.replace(request, headers=(*request.headers, dpop_header))

    response = yield from send_with_retries(
        make_request, ctx.policy, ctx.clock, what="token request"
    )
    if (
        dpop is not None
        and dpop.observe(token_url, response.headers)
        and response.status_code in (400, 401)
        and _error_code(response) == "use_dpop_nonce"
    ):
        logger.info("authkestra: the token endpoint asks for a DPoP nonce; retrying once")
        response = yield from send_with_retries(
            make_request, ctx.policy, ctx.clock, what="token request"
        )
        dpop.observe(token_url, response.headers)
    token = parse_token_response(
        response,
        requested_scopes=spec.scopes,
        received_at=ctx.wall_clock(),
        redact=ctx.redact,
        dpop=dpop is not None,
    )
    logger.debug(
        "authkestra: token obtained for client %r (scope %r, expires_in %s)",
        spec.client_id,
        token.scope,
        token.expires_in,
    )
    return token


def _error_code(response: HttpResponse) -> str | None:
    """The ``error`` member of a JSON error answer, or None."""
    if response.truncated:
        return None
    try:
        error = parse_json_object(response.body).get("error")
    except ValueError:
        return None
    return error if isinstance(error, str) else None
