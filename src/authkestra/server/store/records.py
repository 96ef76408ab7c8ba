"""What the store hands out: plain immutable records, no ORM objects."""

from __future__ import annotations

import dataclasses
import functools
from datetime import datetime

from ..._protocol.client_auth import AuthMethod

__all__ = ["ClientRecord", "SecretHash", "SigningKeyRecord", "TrustedIssuerRecord"]


@dataclasses.dataclass(frozen=True)
class SecretHash:
    """A keyed hash of a client secret; ``expires_at`` is set for a rotated-out secret.

    ``encrypted`` is the secret itself, AES-GCM encrypted, for ``client_secret_jwt``
    clients only (their HS256 assertions are verified with it); never in a repr.
    """

    value: str
    expires_at: datetime | None = None
    encrypted: str | None = dataclasses.field(default=None, repr=False)


@dataclasses.dataclass(frozen=True)
class ClientRecord:
    """A registered client as the token endpoint sees it."""

    client_id: str
    auth_method: str
    scopes: tuple[str, ...]
    default_scopes: tuple[str, ...] | None
    audiences: tuple[str, ...]
    token_ttl: int | None
    enabled: bool
    created_at: datetime
    secrets: tuple[SecretHash, ...] = ()
    #: private_key_jwt: the public JWK Set as JSON text, or the URL to fetch it from.
    jwks: str | None = None
    jwks_uri: str | None = None
    #: tls_client_auth (RFC 8705 §2.1.2): which certificate subject is this client's,
    #: as JSON text ``{"subject_dn": ...}`` or ``{"san_dns" | "san_uri" | "san_ip" |
    #: "san_email": ...}``. Self-signed certificates are kept in ``jwks`` (as ``x5c``).
    tls_client_auth: str | None = None
    #: Which tokens it may introspect (RFC 7662 §4): ``"audience"``, those meant for one
    #: of its :attr:`audiences`; ``"any"``, every token; None, none.
    introspection: str | None = None
    #: RFC 7591 client_name, for people.
    client_name: str | None = None
    #: Keyed hash of its RFC 7592 registration access token (registered dynamically).
    registration_token_hash: str | None = dataclasses.field(default=None, repr=False)
    #: Federated client authentication: the trusted issuer (by name) whose assertions
    #: authenticate this client, and the ``sub`` they carry.
    federated_issuer: str | None = None
    federated_subject: str | None = None
    #: The grants it may use (RFC 7591 ``grant_types``).
    grant_types: tuple[str, ...] = ("client_credentials",)

    @property
    def federated(self) -> bool:
        """True when the client authenticates with assertions of a trusted issuer."""
        return self.federated_issuer is not None

    @functools.cached_property
    def method(self) -> AuthMethod:
        """:attr:`auth_method` as an :class:`~authkestra.AuthMethod`."""
        return AuthMethod(self.auth_method)

    def __repr__(self) -> str:
        return f"ClientRecord({self.client_id!r}, {self.auth_method}, enabled={self.enabled})"


@dataclasses.dataclass(frozen=True, repr=False)
class SigningKeyRecord:
    """A signing key (private JWK as JSON text) and its life."""

    kid: str
    alg: str
    private_jwk: str
    created_at: datetime
    retired_at: datetime | None
    published_until: datetime | None

    def __repr__(self) -> str:
        return f"SigningKeyRecord({self.kid!r}, {self.alg}, retired_at={self.retired_at})"


@dataclasses.dataclass(frozen=True)
class TrustedIssuerRecord:
    """An external issuer whose JWTs may authenticate the clients bound to it.

    ``jwks_url`` None: its keys are found through its metadata (``jwks_uri``);
    ``audience`` None: assertions are for this server's issuer or token endpoint;
    ``max_lifetime`` None: the server's ``federation_max_lifetime``.
    """

    name: str
    issuer: str
    jwks_url: str | None
    audience: str | None
    max_lifetime: int | None
    created_at: datetime
