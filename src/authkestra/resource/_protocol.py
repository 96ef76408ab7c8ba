"""What the framework integrations need of a verifier."""

from __future__ import annotations

from typing import Protocol

from .access_token import AccessToken

__all__ = ["TokenVerifier", "check_scopes"]


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
