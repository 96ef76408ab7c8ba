"""base64url without padding (RFC 7515 §2): one strict decoder, one encoder."""

from __future__ import annotations

import base64
import re

__all__ = ["decode", "encode", "is_base64url"]

_ALPHABET = re.compile(r"[A-Za-z0-9_-]*")


def encode(data: bytes) -> str:
    """``data`` as base64url, without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def is_base64url(segment: str) -> bool:
    """True when ``segment`` could be base64url without padding: the alphabet only, and a
    length no encoding has (1 mod 4) refused."""
    return _ALPHABET.fullmatch(segment) is not None and len(segment) % 4 != 1


def decode(segment: str) -> bytes:
    """The bytes ``segment`` encodes; ValueError unless it is base64url without padding.

    Strict where Python's ``urlsafe_b64decode`` is not: padding, ``+``, ``/``,
    whitespace and any other character outside the alphabet are refused.
    """
    if not is_base64url(segment):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
