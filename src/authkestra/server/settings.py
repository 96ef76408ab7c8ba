"""Server settings: ``AUTHKESTRA_SERVER_*`` environment variables, flags, or code.

The server's variables have a prefix of their own, so that nothing a client
reads (``AUTHKESTRA_ISSUER``, ``AUTHKESTRA_SIGNING_ALG``: the issuer to get
tokens from, the algorithm to sign assertions with) changes how the server
starts. Until the next release the server also reads its old names,
``AUTHKESTRA_<NAME>``, with a warning each -- except those two, whose old names
mean something else to a client.
"""

from __future__ import annotations

import ipaddress
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from .master_key import MasterKey
from .private_files import read_private_file

__all__ = [
    "COLLIDING_LEGACY_NAMES",
    "DEFAULT_DB",
    "ENV_PREFIX",
    "LEGACY_PREFIX",
    "LOG_LEVELS",
    "ServerSettings",
]

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
#: The log levels ``--log-level`` takes (uvicorn's names).
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")
#: Hosts an ``http`` issuer may name: a plain-HTTP issuer anywhere else leaks every token.
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
#: The stores there are: SQLAlchemy backend name -> how to write its URL.
STORE_BACKENDS = {"sqlite": "sqlite:///PATH", "postgresql": "postgresql://USER@HOST/NAME"}


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
    db: str = Field(
        default=DEFAULT_DB,
        description="URL of the store: sqlite:///PATH or postgresql://USER@HOST/NAME.",
    )
    db_file: Path | None = Field(
        default=None,
        description=(
            "A file holding the store's URL (owner-readable only): for a URL with a password,"
            " which must not be on the command line."
        ),
    )
    redis: str | None = Field(
        default=None, description="Redis URL for shared rate-limit and revocation state."
    )
    redis_file: Path | None = Field(
        default=None, description="A file holding the Redis URL (owner-readable only)."
    )
    log_level: Literal["critical", "error", "warning", "info", "debug", "trace"] = Field(
        default="info", description="The least severe log lines written."
    )
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="text (a readable line with name=value fields) or json (one object per line).",
    )
    host: str = Field(default="127.0.0.1", description="The address to listen on.")
    port: int = Field(default=8080, ge=0, le=65535, description="The port to listen on.")
    workers: int | None = Field(
        default=None,
        ge=1,
        le=64,
        description=(
            "Worker processes of authkestra serve, sharing its port. Default (auto): one"
            " per core the process may run on."
        ),
    )
    admin_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description=(
            "The port of the admin API (clients, keys, /metrics), a listener of its own;"
            " none by default. Its requests need a token of this server with the scope"
            " authkestra:admin (authkestra:metrics for /metrics only)."
        ),
    )
    admin_host: str = Field(
        default="127.0.0.1",
        description="The address the admin API listens on (loopback unless changed).",
    )
    registration: bool = Field(
        default=False,
        description=(
            "Dynamic client registration (RFC 7591/7592) at /register, for holders of an"
            " initial access token (authkestra registration-tokens create). Off by default."
        ),
    )
    tracing: bool = Field(
        default=False,
        description=(
            "OpenTelemetry traces (pip install 'authkestra[otel]'): a span per request and per"
            " token issued, exported where the OTEL_* environment variables say."
        ),
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description=(
            "Key of the HMAC that protects stored client secrets. Default: generated on"
            " first start and kept in the store."
        ),
    )
    secret_key_file: Path | None = Field(
        default=None,
        description=(
            "A file holding the HMAC key (at least 16 bytes; owner-readable only), instead"
            " of secret_key."
        ),
    )
    master_key_file: Path | None = Field(
        default=None,
        description=(
            "The master key the store's signing keys and HMAC key are sealed under (32"
            " random bytes, base64url, in a file only its owner may read). Default for the"
            " SQLite store: <store>.master-key beside it, made with the store. Other stores"
            " need one."
        ),
    )
    signing_alg: Literal["ES256", "EdDSA", "RS256"] = Field(
        default="ES256", description="The algorithm of new token signing keys."
    )
    default_token_ttl: int = Field(
        default=3600,
        ge=1,
        le=86400,
        description="Seconds an access token lives, unless its client has a lifetime of its own.",
    )
    max_failures_per_address: int = Field(
        default=100,
        ge=1,
        description=(
            "Failed client authentications from one address per window; more are answered"
            " 429 until the window ends. Never counted per client id: no one can lock a"
            " client out."
        ),
    )
    trusted_proxies: str = Field(
        default="",
        description=(
            "Addresses or networks (comma-separated) of the proxies in front, whose"
            " X-Forwarded-For names the client's address. None by default: the"
            " connection's address is the client's."
        ),
    )
    failure_window: int = Field(default=60, ge=1, description="Seconds of the failure window.")
    secret_grace_period: int = Field(
        default=86400, ge=0, description="Seconds an old secret keeps working after rotation."
    )
    max_body_bytes: int = Field(
        default=16 * 1024, ge=1024, description="The largest request body read, in bytes."
    )
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
    federation_max_lifetime: int = Field(
        default=3600,
        ge=60,
        le=86400,
        description=(
            "Federated client authentication: the longest lifetime (exp - iat, and how far"
            " ahead exp is) of a trusted issuer's assertion, unless the issuer has its own"
            " (authkestra issuers add --max-lifetime). Kubernetes projects service-account"
            " tokens for one hour by default."
        ),
    )
    jwks_uri_cache_seconds: float = Field(
        default=300.0,
        ge=0,
        description=(
            "How long a client's JWKS fetched from its jwks_uri, or a trusted issuer's keys,"
            " are reused."
        ),
    )
    allow_insecure_jwks_uri: bool = Field(
        default=False,
        description=(
            "For tests only: let a client's jwks_uri, and a trusted issuer's metadata and"
            " keys, be http:// on loopback and point at loopback or private addresses"
            " (refused otherwise, against SSRF)."
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

    @field_validator("log_level", mode="before")
    @classmethod
    def _log_level_any_case(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("trusted_proxies")
    @classmethod
    def _addresses_or_networks(cls, value: str) -> str:
        for item in _items(value):
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(
                    f"{item!r} is not an address or network (e.g. 10.0.0.5, 10.0.0.0/8)"
                ) from None
        return ",".join(_items(value))

    @field_validator("workers", mode="before")
    @classmethod
    def _auto_workers(cls, value: object) -> object:
        return None if isinstance(value, str) and value.strip().lower() == "auto" else value

    def worker_count(self) -> int:
        """:attr:`workers`, or one per core this process may run on (auto)."""
        if self.workers is not None:
            return self.workers
        try:
            cores = len(os.sched_getaffinity(0))
        except AttributeError:  # not on Linux
            cores = os.cpu_count() or 1
        return max(1, min(cores, 64))

    def proxies(self) -> list[str]:
        """:attr:`trusted_proxies` as a list (empty: trust no forwarded address)."""
        return _items(self.trusted_proxies)

    @field_validator("db")
    @classmethod
    def _a_store_url(cls, value: str) -> str:
        problem = store_url_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("issuer")
    @classmethod
    def _a_usable_issuer(cls, value: str | None) -> str | None:
        problem = issuer_problem(value) if value is not None else None
        if problem:
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _urls_from_files_and_a_usable_default_issuer(self) -> ServerSettings:
        if self.db_file is not None:
            if "db" in self.model_fields_set:
                raise ValueError("give the store's URL once: db or db_file, not both")
            self.db = _url_in_file(self.db_file, "store URL")
            problem = store_url_problem(self.db)
            if problem:
                raise ValueError(f"the store URL in {self.db_file}: {problem}")
        if self.redis_file is not None:
            if self.redis is not None:
                raise ValueError("give the Redis URL once: redis or redis_file, not both")
            self.redis = _url_in_file(self.redis_file, "Redis URL")
        if self.issuer is None:  # the default: where the server listens
            problem = issuer_problem(self.effective_issuer(), given=False)
            if problem:
                raise ValueError(problem)
        return self

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
        # The URLs read from db_file / redis_file travel as db / redis: a worker's
        # environment is its owner's alone, as the files are.
        values = {**self.model_dump(exclude={"db_file", "redis_file"}), **overrides}
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

    def endpoint(self, path: str) -> str:
        """The public URL of the endpoint at ``path`` (``/token``...): under the issuer,
        whose trailing slash, if it has one, is not doubled."""
        return self.effective_issuer().rstrip("/") + path

    def master_key(self) -> MasterKey | None:
        """The configured master key (None: the store's default); MasterKeyError if unusable."""
        return MasterKey.load(self.master_key_file) if self.master_key_file is not None else None

    def hmac_key_from_settings(self) -> bytes | None:
        """The configured HMAC key, if one is configured (file first)."""
        if self.secret_key_file is not None:
            key = read_private_file(self.secret_key_file, "secret key").strip()
            if len(key) < MIN_SECRET_KEY_BYTES:
                raise ValueError(
                    f"the key in {self.secret_key_file} is under {MIN_SECRET_KEY_BYTES} bytes"
                )
            return key
        if self.secret_key is not None:
            return self.secret_key.get_secret_value().encode()
        return None


def issuer_problem(issuer: str, *, given: bool = True) -> str | None:
    """What is wrong with ``issuer`` as this server's issuer identifier, or None.

    RFC 8414 §2: an https URL with no query or fragment -- http only on loopback,
    where no one else sees the tokens. Used exactly as given (a trailing slash too).
    """
    where = "the issuer" if given else f"the default issuer {issuer} (from --host and --port)"
    try:
        parts = urlsplit(issuer)
        host = parts.hostname
    except ValueError:
        return f"{where} is not a URL: give an absolute https URL, e.g. https://auth.example.com"
    if parts.scheme not in ("https", "http") or not host:
        return f"{where} is not an absolute https URL: give one, e.g. https://auth.example.com"
    if parts.query or parts.fragment or "?" in issuer or "#" in issuer:
        return f"{where} has a query or fragment: an issuer identifier has neither (RFC 8414)"
    if parts.username is not None or parts.password is not None:
        return f"{where} has user information: an issuer identifier has none"
    if parts.scheme == "http" and host not in LOOPBACK_HOSTS:
        fix = "give --issuer with the https URL clients use" if not given else "use https"
        return f"{where} is plain http on a host that is not loopback: {fix}"
    return None


def store_url_problem(url: str) -> str | None:
    """What is wrong with ``url`` as the store's URL, or None (the driver is not checked)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    forms = " or ".join(STORE_BACKENDS.values())
    try:
        backend = make_url(url).get_backend_name()
    except (ArgumentError, ValueError):
        return f"not a store URL: give {forms}"
    if backend not in STORE_BACKENDS:
        return f"unsupported store {backend!r}: give {forms}"
    return None


def _items(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def _url_in_file(path: Path, what: str) -> str:
    text = read_private_file(path, what).decode("utf-8", "replace").strip()
    if not text:
        raise ValueError(f"the {what} file {path} is empty")
    return text


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
