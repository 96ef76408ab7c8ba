"""Scopes (RFC 6749 §3.3): one grammar for the client, the server and the API.

``scope = scope-token *( SP scope-token )``, ``scope-token = 1*( %x21 / %x23-5B /
%x5D-7E )``: printable ASCII but space, ``"`` and ``\\``, separated by single
spaces. A scope string is split on spaces and on nothing else: ``str.split()``
would also split on tabs, control characters and Unicode spaces, so "read", a
no-break space and "admin" would grant ``admin``.
"""

from __future__ import annotations

import re

__all__ = ["SCOPE_TOKEN", "is_scope_token", "split_scope"]

#: One scope token.
SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")


def is_scope_token(value: object) -> bool:
    """True when ``value`` is one scope token."""
    return isinstance(value, str) and SCOPE_TOKEN.fullmatch(value) is not None


def split_scope(scope: str) -> tuple[str, ...]:
    """The scopes of a ``scope`` string, separated by spaces (and by nothing else)."""
    scopes = scope.split(" ")
    # Several spaces in a row, or around: rare, so the common case builds no generator.
    return tuple(s for s in scopes if s) if "" in scopes else tuple(scopes)
