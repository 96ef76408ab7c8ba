"""Interpreting what a token or metadata endpoint sent back."""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from .._json import parse_json_object
from ..errors import (
    MalformedResponse,
    ProviderError,
    RateLimited,
    oauth_error_from_wire,
)
from ..token import Token
from .actions import HttpResponse
from .redact import Redactor
from .retry import parse_retry_after

__all__ = ["parse_token_response", "raise_for_failure"]

logger = logging.getLogger("authkestra")

# RFC 6749 §5.2: error = 1*NQSCHAR (printable ASCII but '"' and '\').
_ERROR_CODE = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]+")
# RFC 6749 A.12 allows VSCHAR; a space would split the Authorization header, so it is refused too.
_ACCESS_TOKEN = re.compile(r"[\x21-\x7e]+")
_NUMBER = re.compile(r"\d+(\.\d+)?")
#: Longest lifetime taken at face value (68 years); longer is a broken server.
MAX_EXPIRES_IN = 2**31 - 1
#: Fields kept out of Token.raw: they are credentials.
_SECRET_FIELDS = frozenset({"access_token", "refresh_token"})


def _excerpt(response: HttpResponse, redact: Redactor) -> str:
    text = response.body[:400].decode("utf-8", errors="replace")
    excerpt = redact.clean(text, 120)
    return f": {excerpt!r}" if excerpt else " with an empty body"


def _optional_text(body: Mapping[str, Any], key: str, redact: Redactor) -> str | None:
    value = body.get(key)
    return redact.clean(value, 300) if isinstance(value, str) and value.strip() else None


def raise_for_failure(response: HttpResponse, redact: Redactor, *, what: str) -> None:
    """Raise the typed error for a failed answer; return if ``response`` may be a success.

    A success is a 2xx whose body is not an OAuth error object. ``what`` names
    the endpoint in messages ("the token endpoint").
    """
    status = response.status_code
    body: dict[str, Any] | None
    try:
        body = parse_json_object(response.body) if not response.truncated else None
    except ValueError:
        body = None
    error = body.get("error") if body is not None else None

    if status == 429:
        detail = f" ({redact.clean(error, 80)})" if isinstance(error, str) else ""
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        hint = f"; retry after {retry_after:.0f}s" if retry_after is not None else ""
        raise RateLimited(
            f"{what} is rate limiting this client (HTTP 429{detail}){hint}",
            status_code=status,
            retry_after=retry_after,
        )
    if 300 <= status <= 399:
        location = redact.clean(response.headers.get("location", "nowhere"), 120)
        raise ProviderError(
            f"{what} answered HTTP {status} redirecting to {location!r}; redirects are not"
            " followed for credential requests: configure the final URL",
            status_code=status,
        )
    if body is not None and error is not None:
        if not isinstance(error, str) or not _ERROR_CODE.fullmatch(error):
            raise MalformedResponse(
                f"{what} answered HTTP {status} with an invalid 'error' member", status_code=status
            )
        raise oauth_error_from_wire(
            error,
            status_code=status,
            error_description=_optional_text(body, "error_description", redact),
            error_uri=_optional_text(body, "error_uri", redact),
        )
    if 200 <= status <= 299:
        return
    if body is None:
        kind = (
            "an oversized body"
            if response.truncated
            else f"a non-JSON body{_excerpt(response, redact)}"
        )
        raise ProviderError(f"{what} answered HTTP {status} with {kind}", status_code=status)
    raise ProviderError(
        f"{what} answered HTTP {status} without an OAuth error code{_excerpt(response, redact)}",
        status_code=status,
    )


def _malformed(what: str, reason: str, status: int) -> MalformedResponse:
    return MalformedResponse(f"{what} sent an invalid token response: {reason}", status_code=status)


def _parse_expires_in(value: Any, what: str, status: int) -> int | None:
    if value is None:
        return None
    number: float
    if isinstance(value, bool):
        raise _malformed(what, "expires_in is a boolean, not a number of seconds", status)
    if isinstance(value, (int, float)):
        number = value
    elif isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        number = float(value.strip())
    else:
        raise _malformed(what, "expires_in is not a number of seconds", status)
    if not math.isfinite(number) or number < 0:
        raise _malformed(what, "expires_in is negative or not finite", status)
    if number > MAX_EXPIRES_IN:
        raise _malformed(what, f"expires_in {number:.0f} is not a plausible lifetime", status)
    return int(number)


def _parse_scope(value: Any, requested: tuple[str, ...], what: str, status: int) -> str | None:
    if value is None:
        # RFC 6749 §5.1: no scope means the requested scope was granted.
        return " ".join(requested) or None
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        value = " ".join(value)  # some servers send a JSON array
    if not isinstance(value, str):
        raise _malformed(what, "scope is not a string", status)
    return " ".join(value.split()) or None


def _parse_token_type(value: Any, dpop: bool, what: str, status: int, redact: Redactor) -> str:
    """``"Bearer"`` or ``"DPoP"`` (only when a DPoP proof was sent), in canonical case."""
    if value is None:
        logger.debug("authkestra: %s sent no token_type; assuming Bearer", what)
        value = "Bearer"
    kind = value.lower() if isinstance(value, str) else None
    if kind == "dpop":
        if not dpop:
            raise _malformed(what, "token_type 'DPoP' but no DPoP proof was sent", status)
        return "DPoP"
    if kind == "bearer":
        if dpop:
            logger.warning(
                "authkestra: %s answered a DPoP request with a Bearer token: it does not"
                " support DPoP; the token is used as a Bearer token",
                what,
            )
        return "Bearer"
    shown = redact.clean(value, 30) if isinstance(value, str) else type(value).__name__
    expected = "Bearer or DPoP" if dpop else "Bearer"
    raise _malformed(what, f"token_type {shown!r} is not {expected}", status)


def parse_token_response(
    response: HttpResponse,
    *,
    requested_scopes: tuple[str, ...],
    received_at: datetime,
    redact: Redactor,
    what: str = "the token endpoint",
    dpop: bool = False,
) -> Token:
    """Turn a token endpoint's answer into a :class:`Token`, or raise the typed error.

    Lenient where servers differ (``expires_in`` as number or numeric string,
    ``token_type`` in any case or absent, ``scope`` absent or as an array);
    strict where safety needs it (``access_token`` present and printable,
    ``token_type`` Bearer, ``expires_in`` a non-negative number).

    ``dpop``: the request carried a DPoP proof (RFC 9449). Then ``token_type``
    ``DPoP`` is taken too; a Bearer answer means the server ignored the proof,
    and is taken as a plain Bearer token with a warning. Without ``dpop``, a
    ``DPoP`` token would be useless and is refused.
    """
    raise_for_failure(response, redact, what=what)
    status = response.status_code
    if response.truncated:
        raise _malformed(what, "the body is larger than the response size limit", status)
    try:
        body = parse_json_object(response.body)
    except ValueError as exc:
        raise _malformed(what, str(exc), status) from None

    access_token = body.get("access_token")
    if not isinstance(access_token, str) or not access_token:
        raise _malformed(what, "access_token is missing or empty", status)
    if not _ACCESS_TOKEN.fullmatch(access_token):
        raise _malformed(what, "access_token has characters not allowed in a header", status)

    token_type = _parse_token_type(body.get("token_type"), dpop, what, status, redact)

    expires_in = _parse_expires_in(body.get("expires_in"), what, status)
    scope = _parse_scope(body.get("scope"), requested_scopes, what, status)
    raw = {key: value for key, value in body.items() if key not in _SECRET_FIELDS}
    return Token(
        access_token=access_token,
        token_type=token_type,
        expires_in=expires_in,
        expires_at=received_at + timedelta(seconds=expires_in) if expires_in is not None else None,
        scope=scope,
        raw=raw,
    )
