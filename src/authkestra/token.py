"""The access token a flow hands to its caller."""

from __future__ import annotations

import dataclasses
import hmac
from collections.abc import Mapping
from datetime import datetime, timezone
from types import MappingProxyType
from typing import Any

__all__ = ["Token"]


@dataclasses.dataclass(frozen=True, repr=False, eq=False)
class Token:
    """An access token obtained with the Client Credentials grant.

    Attributes:
        access_token: the token to send as ``Authorization: Bearer <access_token>``
            (``DPoP <access_token>``, with a proof, for a DPoP-bound token).
        token_type: ``"Bearer"``, or ``"DPoP"`` for a token bound to the flow's
            DPoP key (RFC 9449); normalised from any case.
        expires_in: lifetime in whole seconds as the server gave it, or None.
        expires_at: when it expires (aware UTC datetime), or None when unknown.
        scope: the granted scope as a space-separated string, or None.
        scopes: the granted scopes as a tuple.
        raw: every other field of the response (never ``access_token`` or
            ``refresh_token``), read-only.

    ``repr()`` and ``str()`` never show the access token.
    """

    access_token: str
    token_type: str = "Bearer"
    expires_in: int | None = None
    expires_at: datetime | None = None
    scope: str | None = None
    raw: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.raw, MappingProxyType):
            object.__setattr__(self, "raw", MappingProxyType(dict(self.raw)))
        # Built once: HTTP integrations read it on every request.
        authorization = f"{self.token_type} {self.access_token}"
        object.__setattr__(self, "_authorization", authorization)
        try:
            encoded: bytes | None = authorization.encode("ascii")
        except UnicodeEncodeError:  # not from a server (they are checked): a hand-made token
            encoded = None
        object.__setattr__(self, "_authorization_bytes", encoded)

    @property
    def scopes(self) -> tuple[str, ...]:
        """The granted scopes, in the order the server listed them."""
        return tuple(self.scope.split()) if self.scope else ()

    @property
    def authorization(self) -> str:
        """The value of the ``Authorization`` header: ``"<token_type> <access_token>"``."""
        return self._authorization  # type: ignore[no-any-return, attr-defined]

    @property
    def authorization_bytes(self) -> bytes | None:
        """:attr:`authorization` encoded as ASCII, or None when it is not ASCII."""
        return self._authorization_bytes  # type: ignore[no-any-return, attr-defined]

    def is_expired(self, *, leeway: float = 0.0, now: datetime | None = None) -> bool:
        """True when the token expires within ``leeway`` seconds of ``now``.

        A token without a known expiry is never reported expired here; the
        flow's cache applies its own default lifetime to such tokens.
        """
        if self.expires_at is None:
            return False
        now = now or datetime.now(timezone.utc)
        return (self.expires_at - now).total_seconds() <= leeway

    def __repr__(self) -> str:
        expires = self.expires_at.isoformat() if self.expires_at else None
        return (
            f"Token(token_type={self.token_type!r}, "
            f"access_token=<redacted, {len(self.access_token)} chars>, "
            f"expires_at={expires!r}, scope={self.scope!r})"
        )

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Token):
            return NotImplemented
        return (
            hmac.compare_digest(self.access_token.encode(), other.access_token.encode())
            and self.token_type == other.token_type
            and self.expires_at == other.expires_at
            and self.scope == other.scope
        )

    __hash__ = None  # type: ignore[assignment]
