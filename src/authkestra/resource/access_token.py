"""``AccessToken``: what a resource server knows about a token it accepted."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any

__all__ = ["AccessToken"]


@dataclasses.dataclass(frozen=True)
class AccessToken:
    """A verified access token.

    Attributes:
        subject: ``sub`` -- for Client Credentials tokens, the client.
        client_id: ``client_id`` (RFC 9068), the client the token was issued to.
        scopes: the granted scopes (from ``scope``, or an ``scp`` array).
        audience: ``aud`` as a tuple.
        expires_at: ``exp`` as an aware UTC datetime.
        jwt_id: ``jti``, or None.
        issuer: ``iss``.
        claims: every claim, read-only.
    """

    subject: str | None
    client_id: str | None
    scopes: tuple[str, ...]
    audience: tuple[str, ...]
    expires_at: datetime
    jwt_id: str | None
    issuer: str | None
    claims: Mapping[str, Any] = dataclasses.field(repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.claims, MappingProxyType):
            object.__setattr__(self, "claims", MappingProxyType(dict(self.claims)))

    def has_scopes(self, *scopes: str) -> bool:
        """True when every one of ``scopes`` was granted."""
        return set(scopes) <= set(self.scopes)
