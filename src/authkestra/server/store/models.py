"""The tables of the store (SQLAlchemy 2). Changed only through a migration."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "Base",
    "ClientRow",
    "ClientSecretRow",
    "RevokedTokenRow",
    "ServerStateRow",
    "SigningKeyRow",
    "TrustedIssuerRow",
    "UsedAssertionRow",
]


class Base(DeclarativeBase):
    pass


class ClientRow(Base):
    """A registered client (a service)."""

    __tablename__ = "clients"

    client_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    auth_method: Mapped[str] = mapped_column(String(32))
    scopes: Mapped[str] = mapped_column(Text, default="")
    default_scopes: Mapped[str | None] = mapped_column(Text, nullable=True)
    audiences: Mapped[str] = mapped_column(Text, default="")
    token_ttl: Mapped[int | None] = mapped_column(Integer, nullable=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # private_key_jwt (0002): the client's public JWK Set (JSON text), or where to fetch it.
    jwks: Mapped[str | None] = mapped_column(Text, nullable=True)
    jwks_uri: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    #: tls_client_auth: the certificate subject the client is registered with (JSON).
    tls_client_auth: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: (0004) which tokens it may introspect: "audience" (its own audiences'), "any", or
    #: NULL (none).
    introspection: Mapped[str | None] = mapped_column(String(16), nullable=True)
    #: (0005) RFC 7591 client_name: for people, never used to decide anything.
    client_name: Mapped[str | None] = mapped_column(String(256), nullable=True)
    #: (0005) keyed hash of the RFC 7592 registration access token (dynamically
    #: registered clients only).
    registration_token_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    #: (0006) federated client authentication: the name of the trusted issuer whose
    #: assertions authenticate the client, and the ``sub`` they must carry.
    federated_issuer: Mapped[str | None] = mapped_column(String(64), nullable=True)
    federated_subject: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    #: (0007) the grants it may use, space-separated; NULL: client_credentials only.
    grant_types: Mapped[str | None] = mapped_column(Text, nullable=True)


class TrustedIssuerRow(Base):
    """(0006) An external issuer whose JWTs may authenticate clients bound to it."""

    __tablename__ = "trusted_issuers"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    issuer: Mapped[str] = mapped_column(String(2048), unique=True)
    #: Where its keys are; NULL: the jwks_uri of its metadata (discovery).
    jwks_url: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    #: The aud its assertions must carry; NULL: this server's issuer or token endpoint.
    audience: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    #: The longest lifetime (exp - iat, and exp - now) accepted; NULL: the server default.
    max_lifetime: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ClientSecretRow(Base):
    """A keyed hash of one of a client's secrets; ``expires_at`` set once it is rotated out."""

    __tablename__ = "client_secrets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    client_id: Mapped[str] = mapped_column(
        String(128), ForeignKey("clients.client_id", ondelete="CASCADE"), index=True
    )
    secret_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # client_secret_jwt (0002): the secret itself, AES-GCM encrypted (HS256 needs it to verify).
    encrypted_secret: Mapped[str | None] = mapped_column(Text, nullable=True)


class SigningKeyRow(Base):
    """A signing key: the newest unretired one signs; retired ones stay in the JWKS a while."""

    __tablename__ = "signing_keys"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    alg: Mapped[str] = mapped_column(String(16))
    private_jwk: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    retired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    published_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class RevokedTokenRow(Base):
    """A revoked token's ``jti``, kept until the token would have expired anyway."""

    __tablename__ = "revoked_tokens"

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class UsedAssertionRow(Base):
    """A client assertion's ``jti``, per client, kept until the assertion has expired.

    The primary key makes the INSERT itself the atomic "first use" check, on any
    number of instances sharing the store.
    """

    __tablename__ = "used_assertions"

    client_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    jti: Mapped[str] = mapped_column(String(256), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class ServerStateRow(Base):
    """Small named values every instance shares (the generated HMAC key)."""

    __tablename__ = "server_state"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
