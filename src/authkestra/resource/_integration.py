"""What the framework integrations need of a verifier."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Protocol

from ..errors import ConfigError
from .access_token import AccessToken

__all__ = ["TokenVerifier", "check_scopes", "scope_names"]

_WHITESPACE = re.compile(r"\s")


class TokenVerifier(Protocol):
    """Anything with ``async verify(token) -> AccessToken`` (JWTVerifier, IntrospectionVerifier)."""

    async def verify(self, token: str) -> AccessToken: ...


def check_scopes(access: AccessToken, required: tuple[str, ...]) -> None:
    """Raise InsufficientScope unless every one of ``required`` was granted."""
    from ..errors import InsufficientScope

    missing = [scope for scope in required if scope not in access.scopes]
    if missing:
        raise InsufficientScope(
            f"the token lacks the scope(s) {' '.join(missing)}", required_scopes=required
        )


def scope_names(scopes: Iterable[Any], name: str = "scopes") -> tuple[str, ...]:
    """The scopes an integration demands: each a non-empty string without spaces.

    ConfigError otherwise, when the integration is set up: a list passed as one
    scope, or ``"read write"`` as one, would fail every request later.
    """
    values = tuple(scopes)
    for value in values:
        if not isinstance(value, str) or not value or _WHITESPACE.search(value):
            raise ConfigError(
                f"{name}: each scope must be a non-empty string without spaces, not {value!r}"
            )
    return values
