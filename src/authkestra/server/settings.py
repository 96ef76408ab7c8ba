"""Server settings: ``AUTHKESTRA_SERVER_*`` environment variables, flags, or code.

The server's variables have a prefix of their own, so that nothing a client
reads (``AUTHKESTRA_ISSUER``, ``AUTHKESTRA_SIGNING_ALG``: the issuer to get
tokens from, the algorithm to sign assertions with) changes how the server
starts. Until the next release the server also reads its old names,
``AUTHKESTRA_<NAME>``, with a warning each -- except those two, whose old names
mean something else to a client.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from .master_key import MasterKey

__all__ = ["COLLIDING_LEGACY_NAMES", "DEFAULT_DB", "ENV_PREFIX", "LEGACY_PREFIX", "ServerSettings"]

#: The embedded default store: a SQLite file in the working directory.
DEFAULT_DB = "sqlite:///authkestra.db"
#: The shortest HMAC key for client secrets (what SecretHasher accepts).
MIN_SECRET_KEY_BYTES = 16
#: ``AUTHKESTRA_SERVER_DB``, ``AUTHKESTRA_SERVER_PORT``, ...
ENV_PREFIX = "AUTHKESTRA_SERVER_"
#: What the server read before (deprecated; read with a warning until the next release).
LEGACY_PREFIX = "AUTHKESTRA_"
#: Settings whose old name is a client variable: never read from the old name.
COLLIDING_LEGACY_NAMES = frozenset({"issuer", "signing_alg"})


class ServerSettings(BaseSettings):
    """Everything ``authkestra serve`` and ``create_app()`` can be told.

    Each field is also read from ``AUTHKESTRA_SERVER_<NAME>`` (for example
    ``AUTHKESTRA_SERVER_DB``, ``AUTHKESTRA_SERVER_REDIS``,
    ``AUTHKESTRA_SERVER_ISSUER``); :meth:`from_environment` reads the old
    names too, for one release.
    """

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    issuer: str | None = Field(
        default=None,
        description="The issuer URL, as clients and APIs know it (default: http://HOST:PORT).",
    )
    db: str = Field(default=DEFAULT_DB, description="SQLAlchemy URL of the store.")
    redis: str | None = Field(
        default=None, description="Redis URL for shared rate-limit and revocation state."
    )
    host: str = "127.0.0.1"
    port: int = 8080
    secret_key: SecretStr | None = Field(
        default=None,
        description=(
            "Key of the HMAC that protects stored client secrets. Default: generated on"
            " first start and kept in the store."
        ),
    )
    secret_key_file: Path | None = None
    master_key_file: Path | None = Field(
        default=None,
        description=(
            "The master key the store's signing keys and HMAC key are sealed under (32"
            " random bytes, base64url, in a file only its owner may read). Default for the"
            " SQLite store: <store>.master-key beside it, made with the store. Other stores"
            " need one."
        ),
    )
    signing_alg: Literal["ES256", "EdDSA", "RS256"] = "ES256"
    default_token_ttl: int = Field(default=3600, ge=1, le=86400)
    max_failures_per_client: int = Field(default=20, ge=1)
    max_failures_per_address: int = Field(default=100, ge=1)
    failure_window: int = Field(default=60, ge=1, description="Seconds of the failure window.")
    secret_grace_period: int = Field(
        default=86400, ge=0, description="Seconds an old secret keeps working after rotation."
    )
    max_body_bytes: int = Field(default=16 * 1024, ge=1024)
    cache_seconds: float = Field(
        default=2.0,
        ge=0,
        description="How long an instance reuses a client or key it read from the store.",
    )
    migrate: bool = Field(default=True, description="Upgrade the store schema at start.")
    assertion_max_lifetime: int = Field(
        default=300,
        ge=10,
        le=86400,
        description=(
            "Client assertions (private_key_jwt, client_secret_jwt): the furthest ahead, in"
            " seconds, their exp may be. Each jti is remembered until exp, so this bounds"
            " that memory too."
        ),
    )
    assertion_leeway: int = Field(
        default=30,
        ge=0,
        le=300,
        description="Seconds of clock skew allowed on a client assertion's exp, nbf and iat.",
    )
    jwks_uri_cache_seconds: float = Field(
        default=300.0,
        ge=0,
        description="How long a client's JWKS fetched from its jwks_uri is reused.",
    )
    allow_insecure_jwks_uri: bool = Field(
        default=False,
        description=(
            "For tests only: let a client's jwks_uri be http:// on loopback and point at"
            " loopback or private addresses (refused otherwise, against SSRF)."
        ),
    )

    dpop_require_nonce: bool = Field(
        default=False,
        description=(
            "DPoP (RFC 9449 §8): require a server nonce in every proof sent to the token"
            " endpoint (answered with use_dpop_nonce and a DPoP-Nonce header)."
        ),
    )
    dpop_proof_max_age: int = Field(
        default=60, ge=1, le=600, description="Seconds a DPoP proof's iat may lie in the past."
    )
    dpop_proof_max_future: int = Field(
        default=5, ge=0, le=60, description="Seconds a DPoP proof's iat may lie in the future."
    )
    dpop_nonce_window: int = Field(
        default=300,
        ge=10,
        le=3600,
        description="Seconds each DPoP nonce window lasts (a nonce is good for two windows).",
    )

    tls_cert: Path | None = Field(
        default=None,
        description="Serve HTTPS with this certificate (PEM; the chain may follow the leaf).",
    )
    tls_key: Path | None = Field(default=None, description="The TLS certificate's private key.")
    tls_client_ca: Path | None = Field(
        default=None,
        description=(
            "PEM bundle of the CAs whose client certificates authenticate tls_client_auth"
            " clients (RFC 8705 §2.1)."
        ),
    )
    tls_bind_tokens: bool = Field(
        default=True,
        description=(
            "Bind each token issued over a connection with a client certificate to that"
            " certificate (cnf x5t#S256, RFC 8705 §3)."
        ),
    )
    tls_trust_refresh: float = Field(
        default=5.0,
        gt=0,
        description="Seconds between reloads of the registered self-signed client certificates.",
    )

    @field_validator("issuer")
    @classmethod
    def _issuer_without_trailing_slash(cls, value: str | None) -> str | None:
        return value.rstrip("/") if value else value

    @field_validator("secret_key")
    @classmethod
    def _secret_key_long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().encode()) < MIN_SECRET_KEY_BYTES:
            raise ValueError(f"secret_key must be at least {MIN_SECRET_KEY_BYTES} bytes")
        return value

    @classmethod
    def from_environment(
        cls, environ: Mapping[str, str] | None = None, **overrides: Any
    ) -> ServerSettings:
        """Settings from ``environ`` (default ``os.environ``), ``overrides`` winning.

        ``AUTHKESTRA_SERVER_<NAME>`` variables; where one is unset, its old name
        ``AUTHKESTRA_<NAME>`` (but for :data:`COLLIDING_LEGACY_NAMES`), with a
        ``FutureWarning`` naming the new one. Empty variables and None overrides
        count as unset. ``pydantic.ValidationError`` for a value that does not fit.
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name in cls.model_fields:
            value = env.get(ENV_PREFIX + name.upper())
            if not value and name not in COLLIDING_LEGACY_NAMES:
                value = env.get(LEGACY_PREFIX + name.upper())
                if value:
                    warnings.warn(
                        f"{LEGACY_PREFIX}{name.upper()} is deprecated for the server: set"
                        f" {ENV_PREFIX}{name.upper()} (the old name is read until the next"
                        " release)",
                        FutureWarning,
                        stacklevel=2,
                    )
            if value:
                values[name] = value
        values.update({name: value for name, value in overrides.items() if value is not None})
        return _Given(**values)

    def to_environment(self, **overrides: object) -> dict[str, str]:
        """These settings as ``AUTHKESTRA_SERVER_*`` variables (for worker processes)."""
        values = {**self.model_dump(), **overrides}
        values["issuer"] = self.effective_issuer()
        env: dict[str, str] = {}
        for name, value in values.items():
            if value is None:
                continue
            if isinstance(value, SecretStr):
                text = value.get_secret_value()
            elif isinstance(value, bool):
                text = "true" if value else "false"
            else:
                text = str(value)
            env[f"{ENV_PREFIX}{name.upper()}"] = text
        return env

    def effective_issuer(self) -> str:
        """The issuer, defaulting to the address the server listens on."""
        if self.issuer:
            return self.issuer
        host = f"[{self.host}]" if ":" in self.host else self.host
        scheme = "https" if self.tls_cert else "http"
        return f"{scheme}://{host}:{self.port}"

    def master_key(self) -> MasterKey | None:
        """The configured master key (None: the store's default); MasterKeyError if unusable."""
        return MasterKey.load(self.master_key_file) if self.master_key_file is not None else None

    def hmac_key_from_settings(self) -> bytes | None:
        """The configured HMAC key, if one is configured (file first)."""
        if self.secret_key_file is not None:
            key = self.secret_key_file.read_bytes().strip()
            if len(key) < MIN_SECRET_KEY_BYTES:
                raise ValueError(
                    f"the key in {self.secret_key_file} is under {MIN_SECRET_KEY_BYTES} bytes"
                )
            return key
        if self.secret_key is not None:
            return self.secret_key.get_secret_value().encode()
        return None


class _Given(ServerSettings):
    """Settings from the values given only: :meth:`ServerSettings.from_environment` has read
    the environment it was handed, and the process's own must not be read again."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)
