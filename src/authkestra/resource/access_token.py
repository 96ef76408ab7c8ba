"""``AccessToken``: what a resource server knows about a token it accepted."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any

__all__ = ["AccessToken"]

_set = object.__setattr__


@dataclasses.dataclass(frozen=True)
class AccessToken:
    """A verified access token.

    Attributes:
        subject: ``sub`` -- for Client Credentials tokens, the client.
        client_id: the client the token was issued to: ``client_id`` (RFC 9068), or
            for issuers that leave it out, ``azp`` (OpenID Connect's authorized party).
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

    @classmethod
    def _verified(
        cls,
        *,
        subject: str | None,
        client_id: str | None,
        scopes: tuple[str, ...],
        audience: tuple[str, ...],
        expires_at: datetime,
        jwt_id: str | None,
        issuer: str | None,
        claims: MappingProxyType[str, Any],
    ) -> AccessToken:
        """The verifier's constructor: the same object as ``AccessToken(...)`` makes.

        It skips the frozen dataclass's field-by-field ``__init__`` (a third of the cost of
        making one) and trusts its caller: ``claims`` is a read-only view of a dict that
        nobody else holds (one just parsed from the token), so it is not copied.
        """
        token = object.__new__(cls)
        _set(
            token,
            "__dict__",
            {
                "subject": subject,
                "client_id": client_id,
                "scopes": scopes,
                "audience": audience,
                "expires_at": expires_at,
                "jwt_id": jwt_id,
                "issuer": issuer,
                "claims": claims,
            },
        )
        return token

    def has_scopes(self, *scopes: str) -> bool:
        """True when every one of ``scopes`` was granted."""
        return set(scopes) <= set(self.scopes)
