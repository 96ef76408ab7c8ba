"""Strict reading of a compact JWS: the parts, before any signature is checked.

Only parsing lives here. Signatures are checked by joserfc's algorithm
implementations (see :mod:`authkestra.resource.verifier`).
"""

from __future__ import annotations

import base64
import dataclasses
import re
from typing import Any

from .._protocol.responses import parse_json_object
from ..errors import InvalidToken

__all__ = ["CompactJWT", "parse_compact"]

_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")


@dataclasses.dataclass(frozen=True, repr=False)
class CompactJWT:
    header: dict[str, Any]
    claims: dict[str, Any]
    signing_input: bytes
    signature: bytes

    def __repr__(self) -> str:
        return f"CompactJWT(alg={self.header.get('alg')!r}, kid={self.header.get('kid')!r})"


def _b64(segment: str, what: str) -> bytes:
    if not _SEGMENT.fullmatch(segment) or len(segment) % 4 == 1:
        raise InvalidToken(f"the token's {what} is not base64url")
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _json(segment: str, what: str) -> dict[str, Any]:
    try:
        return parse_json_object(_b64(segment, what))
    except ValueError as exc:
        raise InvalidToken(f"the token's {what} is not a JSON object ({exc})") from None


def parse_compact(
    token: object, *, max_length: int, known_headers: dict[str, dict[str, Any]] | None = None
) -> CompactJWT:
    """Split and decode a compact JWS; InvalidToken for anything malformed.

    ``known_headers`` maps header segments already decoded (and checked by the
    caller) to their header: an issuer's tokens share a handful of headers, so
    each is decoded once.
    """
    if not isinstance(token, str) or not token:
        raise InvalidToken("no token")
    if len(token) > max_length:
        raise InvalidToken(f"the token is longer than {max_length} characters")
    parts = token.split(".")
    if len(parts) != 3:
        raise InvalidToken("the token is not a JWS in compact form (three dot-separated parts)")
    known = known_headers.get(parts[0]) if known_headers is not None else None
    header = known if known is not None else _json(parts[0], "header")
    claims = _json(parts[1], "payload")
    signature = _b64(parts[2], "signature") if parts[2] else b""
    if "crit" in header or header.get("b64") is False:
        # RFC 7515 §4.1.11: extensions we do not implement must make the token invalid.
        raise InvalidToken("the token uses critical header extensions")
    return CompactJWT(header, claims, f"{parts[0]}.{parts[1]}".encode("ascii"), signature)
