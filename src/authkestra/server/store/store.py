"""The store: clients, secrets (keyed hashes), signing keys, revocations; SQLite or PostgreSQL.

Its secrets -- the signing keys' private parts, the HMAC key -- are sealed under the
master key at rest (:mod:`.sealed`). An SQLite store's file is made readable by its
owner only (``0600``), in a directory made for it ``0700``.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import secrets
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, cast

from alembic import command
from alembic.config import Config
from sqlalchemy import (
    CursorResult,
    Engine,
    bindparam,
    create_engine,
    delete,
    event,
    select,
    text,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from ..._protocol.client_auth import AuthMethod
from ..master_key import MasterKey, is_sealed
from .models import (
    ClientRow,
    ClientSecretRow,
    RevokedTokenRow,
    ServerStateRow,
    SigningKeyRow,
    TrustedIssuerRow,
    UsedAssertionRow,
)
from .records import ClientRecord, SecretHash, SigningKeyRecord, TrustedIssuerRecord
from .sealed import CHECK_STATE, CHECK_TEXT, SEALED_STATES, Sealer, key_place, state_place

logger = logging.getLogger("authkestra.server")

__all__ = [
    "ClientExists",
    "IssuerExists",
    "IssuerInUse",
    "Store",
    "StoreMissing",
    "UnknownClient",
    "UnknownIssuer",
]

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
#: What :meth:`Store.update_client` may change.
UPDATABLE = frozenset(
    {
        "scopes",
        "default_scopes",
        "audiences",
        "token_ttl",
        "enabled",
        "introspection",
        "client_name",
        "grant_types",
    }
)
#: Serialises schema upgrades of instances starting together on one PostgreSQL.
_PG_MIGRATION_LOCK = 0x61757468  # "auth"


class UnknownClient(LookupError):
    """No client with that id."""


class ClientExists(ValueError):
    """A client with that id is already registered."""


class UnknownIssuer(LookupError):
    """No trusted issuer of that name."""


class IssuerExists(ValueError):
    """A trusted issuer of that name, or with that issuer URL, is registered already."""


class IssuerInUse(ValueError):
    """Clients are bound to the trusted issuer: it cannot be removed before them."""


class StoreMissing(LookupError):
    """The store named does not exist (and was not to be made)."""


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _aware(value: datetime | None) -> datetime | None:
    # SQLite returns naive datetimes; everything here is UTC.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value


class Store:
    """All persistent server state, behind plain methods (blocking; call from a thread)."""

    def __init__(
        self, url: str, *, master_key: MasterKey | None = None, create: bool = True
    ) -> None:
        """Open the store at ``url``; ``create=False``: StoreMissing rather than a new one.

        ``master_key`` seals its secrets; None: the SQLite store's own, beside it.
        """
        self.url = url
        #: A file on this machine (SQLite): a read is microseconds, not a network round trip.
        self.is_local = url.startswith("sqlite")
        self.sealer = Sealer(url, master_key, sealed_already=self._holds_secrets)
        if self.is_local:
            _prepare_sqlite_file(url, create=create)
            self.engine: Engine = create_engine(
                url, connect_args={"check_same_thread": False, "timeout": 30}
            )
            event.listen(self.engine, "connect", _sqlite_pragmas)
        else:
            if url.startswith("postgresql://"):
                url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
            self.engine = create_engine(url, pool_pre_ping=True, pool_size=10)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    # -- schema --------------------------------------------------------------------------

    def migrate(self) -> None:
        """Upgrade the schema to the newest version (versioned Alembic migrations)."""
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with self.engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK}
                )
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    def schema_version(self) -> str | None:
        with self.engine.connect() as connection:
            try:
                return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
            except Exception:
                return None

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions.begin() as session:
            yield session

    def ping(self) -> None:
        with self.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    def close(self) -> None:
        self.engine.dispose()

    # -- shared state --------------------------------------------------------------------

    def state(self, name: str, default_factory: object) -> str:
        """A shared named value, created once (by whichever instance comes first).

        Secret ones (:data:`~.sealed.SEALED_STATES`) are kept sealed under the master key.
        """
        with self.session() as session:
            row = session.get(ServerStateRow, name)
            if row is not None:
                return self.sealer.open_state(name, row.value)
        assert callable(default_factory)
        value = str(default_factory())
        try:
            with self.session() as session:
                session.add(ServerStateRow(name=name, value=self.sealer.seal_state(name, value)))
        except IntegrityError:
            pass  # another instance created it first: use theirs
        with self.session() as session:
            row = session.get(ServerStateRow, name)
            assert row is not None
            return self.sealer.open_state(name, row.value)

    # -- the master key ------------------------------------------------------------------

    def _holds_secrets(self) -> bool:
        """Whether anything here is (or is to be) sealed: a master key made now would not
        open it."""
        with self.session() as session:
            if session.get(ServerStateRow, CHECK_STATE) is not None:
                return True
            if any(session.get(ServerStateRow, name) is not None for name in SEALED_STATES):
                return True
            return session.scalars(select(SigningKeyRow.kid).limit(1)).first() is not None

    def seal_secrets(self) -> None:
        """Make sure the master key opens this store, and that nothing secret is in plaintext.

        The first time, a check value is sealed with the key; after that, a key that
        does not open it is a WrongMasterKey before anything else is read. Secrets a
        version that did not seal them wrote are sealed now, in one transaction.
        """
        key = self.sealer.key
        # Another instance may seal its check first: then it is that one's to open.
        with contextlib.suppress(IntegrityError), self.session() as session:
            if session.get(ServerStateRow, CHECK_STATE) is None:
                sealed = key.seal(CHECK_TEXT, state_place(CHECK_STATE))
                session.add(ServerStateRow(name=CHECK_STATE, value=sealed))
        with self.session() as session:
            check = session.get(ServerStateRow, CHECK_STATE)
            assert check is not None
            key.open(check.value, state_place(CHECK_STATE))
            for row in session.scalars(select(SigningKeyRow)):
                if not is_sealed(row.private_jwk):
                    row.private_jwk = key.seal(row.private_jwk, key_place(row.kid))
            for name in SEALED_STATES:
                state = session.get(ServerStateRow, name)
                if state is not None and not is_sealed(state.value):
                    state.value = key.seal(state.value, state_place(name))

    def reseal(self, new_key: MasterKey) -> int:
        """Seal every secret under ``new_key`` instead (one transaction); how many were.

        From then on only ``new_key`` opens the store.
        """
        old = self.sealer.key
        count = 0
        with self.session() as session:
            check = session.get(ServerStateRow, CHECK_STATE)
            if check is not None:
                old.open(check.value, state_place(CHECK_STATE))
                check.value = new_key.seal(CHECK_TEXT, state_place(CHECK_STATE))
            for row in session.scalars(select(SigningKeyRow)):
                plain = self.sealer.open_key(row.kid, row.private_jwk)
                row.private_jwk = new_key.seal(plain, key_place(row.kid))
                count += 1
            for name in SEALED_STATES:
                state = session.get(ServerStateRow, name)
                if state is not None:
                    plain = self.sealer.open_state(name, state.value)
                    state.value = new_key.seal(plain, state_place(name))
                    count += 1
        self.sealer.replace(new_key)
        return count

    # -- clients -------------------------------------------------------------------------

    def create_client(
        self,
        client_id: str,
        *,
        secret_hash: str | None,
        auth_method: str,
        scopes: tuple[str, ...],
        audiences: tuple[str, ...],
        default_scopes: tuple[str, ...] | None = None,
        token_ttl: int | None = None,
        encrypted_secret: str | None = None,
        jwks: str | None = None,
        jwks_uri: str | None = None,
        tls_client_auth: str | None = None,
        introspection: str | None = None,
        client_name: str | None = None,
        registration_token_hash: str | None = None,
        federated_issuer: str | None = None,
        federated_subject: str | None = None,
        grant_types: tuple[str, ...] | None = None,
    ) -> ClientRecord:
        """Register a client: with a secret (its hash; ``encrypted_secret`` too for
        ``client_secret_jwt``), or without one and with ``jwks``/``jwks_uri`` (private_key_jwt,
        self_signed_tls_client_auth) or ``tls_client_auth`` (the certificate subject).
        """
        now = _utcnow()
        try:
            with self.session() as session:
                session.add(
                    ClientRow(
                        client_id=client_id,
                        auth_method=auth_method,
                        scopes=" ".join(scopes),
                        default_scopes=" ".join(default_scopes)
                        if default_scopes is not None
                        else None,
                        audiences=" ".join(audiences),
                        token_ttl=token_ttl,
                        enabled=True,
                        created_at=now,
                        jwks=jwks,
                        jwks_uri=jwks_uri,
                        tls_client_auth=tls_client_auth,
                        introspection=introspection,
                        client_name=client_name,
                        registration_token_hash=registration_token_hash,
                        federated_issuer=federated_issuer,
                        federated_subject=federated_subject,
                        grant_types=" ".join(grant_types) if grant_types else None,
                    )
                )
                session.flush()
                if secret_hash is not None:
                    session.add(
                        ClientSecretRow(
                            client_id=client_id,
                            secret_hash=secret_hash,
                            created_at=now,
                            encrypted_secret=encrypted_secret,
                        )
                    )
        except IntegrityError:
            raise ClientExists(client_id) from None
        return self.get_client(client_id)

    def get_client(self, client_id: str) -> ClientRecord:
        """The client and its live secrets, read in one query (one round trip: a known
        and an unknown id cost the store the same); UnknownClient if there is none.

        Plain rows, no ORM objects: this is on the path of every uncached token request.
        """
        with self.engine.connect() as connection:  # a read: no ORM session
            rows = connection.execute(_CLIENT_WITH_SECRETS, {"client_id": client_id}).all()
        if not rows:
            raise UnknownClient(client_id)
        now = _utcnow()
        hashes = []
        for row in rows:
            expires_at = _aware(row.secret_expires_at)
            if row.secret_hash is not None and (expires_at is None or expires_at > now):
                hashes.append(SecretHash(row.secret_hash, expires_at, row.encrypted_secret))
        return _record(rows[0], tuple(hashes))

    def find_client(self, client_id: str) -> ClientRecord | None:
        try:
            return self.get_client(client_id)
        except UnknownClient:
            return None

    def self_signed_certificates(self) -> list[str]:
        """The JWK Sets (JSON text) of enabled ``self_signed_tls_client_auth`` clients."""
        with self.session() as session:
            rows = session.scalars(
                select(ClientRow.jwks).where(
                    ClientRow.auth_method == AuthMethod.SELF_SIGNED_TLS_CLIENT_AUTH.value,
                    ClientRow.enabled.is_(True),
                )
            ).all()
            return [jwks for jwks in rows if jwks]

    def disabled_clients(self) -> list[str]:
        """The ids of the clients that are disabled (their tokens must be refused)."""
        with self.session() as session:
            return list(
                session.scalars(select(ClientRow.client_id).where(ClientRow.enabled.is_(False)))
            )

    def list_clients(self) -> list[ClientRecord]:
        with self.session() as session:
            rows = session.scalars(select(ClientRow).order_by(ClientRow.client_id)).all()
            return [_record(row, ()) for row in rows]

    def rotate_secret(
        self,
        client_id: str,
        new_hash: str,
        grace: timedelta,
        *,
        encrypted_secret: str | None = None,
    ) -> datetime:
        """Add a new secret; current ones keep working until the returned time."""
        now = _utcnow()
        until = now + grace
        with self.session() as session:
            if session.get(ClientRow, client_id) is None:
                raise UnknownClient(client_id)
            for row in session.scalars(
                select(ClientSecretRow).where(ClientSecretRow.client_id == client_id)
            ):
                expires = _aware(row.expires_at)
                if expires is None or expires > until:
                    row.expires_at = until
            session.add(
                ClientSecretRow(
                    client_id=client_id,
                    secret_hash=new_hash,
                    created_at=now,
                    encrypted_secret=encrypted_secret,
                )
            )
        return until

    def set_client_keys(self, client_id: str, *, jwks: str | None, jwks_uri: str | None) -> None:
        """Replace a client's public keys (its JWK Set, or the URL it is fetched from)."""
        with self.session() as session:
            row = session.get(ClientRow, client_id)
            if row is None:
                raise UnknownClient(client_id)
            row.jwks = jwks
            row.jwks_uri = jwks_uri

    def set_tls_subject(self, client_id: str, tls_client_auth: str) -> None:
        """Replace a tls_client_auth client's certificate subject (JSON, see ClientRecord)."""
        with self.session() as session:
            row = session.get(ClientRow, client_id)
            if row is None:
                raise UnknownClient(client_id)
            row.tls_client_auth = tls_client_auth

    def set_enabled(self, client_id: str, enabled: bool) -> None:
        self.update_client(client_id, {"enabled": enabled})

    def update_client(self, client_id: str, changes: Mapping[str, object]) -> ClientRecord:
        """Change a client's :data:`UPDATABLE` fields (secrets and keys untouched); the result.

        Space-separated lists (scopes, audiences) are given as sequences;
        ``default_scopes`` None means all of its scopes.
        """
        unknown = set(changes) - UPDATABLE
        if unknown:
            raise ValueError(f"not updatable: {', '.join(sorted(unknown))}")
        with self.session() as session:
            row = session.get(ClientRow, client_id)
            if row is None:
                raise UnknownClient(client_id)
            for name, value in changes.items():
                listed = (
                    name in ("scopes", "audiences", "default_scopes", "grant_types")
                    and value is not None
                )
                setattr(row, name, " ".join(value) if listed else value)  # type: ignore[arg-type]
        return self.get_client(client_id)

    def delete_client(self, client_id: str) -> None:
        with self.session() as session:
            session.execute(delete(ClientSecretRow).where(ClientSecretRow.client_id == client_id))
            result = session.execute(delete(ClientRow).where(ClientRow.client_id == client_id))
            if cast("CursorResult[Any]", result).rowcount == 0:
                raise UnknownClient(client_id)

    def set_federation(self, client_id: str, *, issuer: str, subject: str) -> None:
        """Bind a client to a trusted issuer (by name) and the ``sub`` of its assertions."""
        with self.session() as session:
            if session.get(TrustedIssuerRow, issuer) is None:
                raise UnknownIssuer(issuer)
            row = session.get(ClientRow, client_id)
            if row is None:
                raise UnknownClient(client_id)
            row.federated_issuer, row.federated_subject = issuer, subject

    # -- trusted issuers -----------------------------------------------------------------

    def add_issuer(
        self,
        name: str,
        issuer: str,
        *,
        jwks_url: str | None = None,
        audience: str | None = None,
        max_lifetime: int | None = None,
    ) -> TrustedIssuerRecord:
        """Trust ``issuer`` under ``name``; IssuerExists if either is taken."""
        try:
            with self.session() as session:
                taken = session.scalar(
                    select(TrustedIssuerRow.name).where(TrustedIssuerRow.issuer == issuer)
                )
                if taken is not None or session.get(TrustedIssuerRow, name) is not None:
                    raise IssuerExists(name)
                session.add(
                    TrustedIssuerRow(
                        name=name,
                        issuer=issuer,
                        jwks_url=jwks_url,
                        audience=audience,
                        max_lifetime=max_lifetime,
                        created_at=_utcnow(),
                    )
                )
        except IntegrityError:  # added at the same moment by another instance
            raise IssuerExists(name) from None
        return self.get_issuer(name)

    def get_issuer(self, name: str) -> TrustedIssuerRecord:
        with self.session() as session:
            row = session.get(TrustedIssuerRow, name)
            if row is None:
                raise UnknownIssuer(name)
            return _issuer(row)

    def issuers(self) -> list[TrustedIssuerRecord]:
        """Every trusted issuer, by name."""
        with self.session() as session:
            rows = session.scalars(select(TrustedIssuerRow).order_by(TrustedIssuerRow.name))
            return [_issuer(row) for row in rows]

    def remove_issuer(self, name: str) -> None:
        """Trust ``name`` no more; IssuerInUse while clients are bound to it."""
        with self.session() as session:
            bound = session.scalars(
                select(ClientRow.client_id).where(ClientRow.federated_issuer == name).limit(5)
            ).all()
            if bound:
                raise IssuerInUse(", ".join(bound))
            result = session.execute(delete(TrustedIssuerRow).where(TrustedIssuerRow.name == name))
            if cast("CursorResult[Any]", result).rowcount == 0:
                raise UnknownIssuer(name)

    # -- signing keys --------------------------------------------------------------------

    def signing_keys(self, *, private: bool = True) -> list[SigningKeyRecord]:
        """Every key still published, newest first; ``private``: with its private JWK opened
        (without, ``private_jwk`` is empty: listing keys needs no master key)."""
        now = _utcnow()
        with self.session() as session:
            rows = session.scalars(
                select(SigningKeyRow).order_by(SigningKeyRow.created_at.desc())
            ).all()
            return [
                _key(row, self.sealer.open_key(row.kid, row.private_jwk) if private else "")
                for row in rows
                if row.published_until is None or _aware(row.published_until) > now  # type: ignore[operator]
            ]

    def add_signing_key(
        self,
        kid: str,
        alg: str,
        private_jwk: str,
        *,
        retire_others_after: timedelta | None,
        signs_from: datetime | None = None,
    ) -> None:
        """Add a key that signs from ``signs_from`` (default: now).

        The keys that sign until then stop at ``signs_from`` (a key set to stop earlier
        keeps its time) and stay published ``retire_others_after`` longer; with None,
        they are left as they are.
        """
        now = _utcnow()
        takes_over = max(signs_from or now, now)
        with self.session() as session:
            if retire_others_after is not None:
                for row in session.scalars(select(SigningKeyRow)):
                    retired = _aware(row.retired_at)
                    if retired is None or retired > takes_over:
                        row.retired_at = takes_over
                        row.published_until = takes_over + retire_others_after
            sealed = self.sealer.seal_key(kid, private_jwk)
            session.add(SigningKeyRow(kid=kid, alg=alg, private_jwk=sealed, created_at=now))

    def withdraw_signing_key(self, kid: str) -> None:
        """Stop signing with ``kid`` and publishing it, now; KeyError if no such key."""
        now = _utcnow()
        with self.session() as session:
            row = session.get(SigningKeyRow, kid)
            if row is None:
                raise KeyError(kid)
            retired = _aware(row.retired_at)
            if retired is None or retired > now:
                row.retired_at = now
            row.published_until = now

    # -- revocation ----------------------------------------------------------------------

    def revoke(self, jti: str, expires_at: datetime) -> None:
        with contextlib.suppress(IntegrityError), self.session() as session:
            session.add(RevokedTokenRow(jti=jti, expires_at=expires_at))

    def is_revoked(self, jti: str) -> bool:
        with self.engine.connect() as connection:  # a read: no ORM session, no transaction
            found = connection.execute(_IS_REVOKED, {"jti": jti}).first()
        return found is not None

    def revocations(self) -> list[tuple[str, datetime]]:
        """Every revocation whose token has not expired yet: (jti, expires_at)."""
        with self.session() as session:
            rows = session.scalars(
                select(RevokedTokenRow).where(RevokedTokenRow.expires_at >= _utcnow())
            ).all()
            return [(row.jti, _aware(row.expires_at) or row.expires_at) for row in rows]

    # -- used client assertions ----------------------------------------------------------

    def use_assertion(self, client_id: str, jti: str, expires_at: datetime) -> bool:
        """Record the first use of an assertion's ``jti``: True the first time, else False.

        The primary key (client_id, jti) makes the INSERT itself the check, atomic across
        every instance sharing the store. A row whose assertion has expired no longer
        counts (the assertion could not be accepted any more anyway).
        """
        for _attempt in range(2):
            try:
                with self.session() as session:
                    session.add(
                        UsedAssertionRow(client_id=client_id, jti=jti, expires_at=expires_at)
                    )
                return True
            except IntegrityError:
                with self.session() as session:
                    result = session.execute(
                        delete(UsedAssertionRow).where(
                            UsedAssertionRow.client_id == client_id,
                            UsedAssertionRow.jti == jti,
                            UsedAssertionRow.expires_at < _utcnow(),
                        )
                    )
                    if cast("CursorResult[Any]", result).rowcount == 0:
                        return False  # still remembered: a replay
        return False

    def purge_used_assertions(self) -> int:
        """Forget the jti of every assertion that has expired."""
        with self.session() as session:
            result = session.execute(
                delete(UsedAssertionRow).where(UsedAssertionRow.expires_at < _utcnow())
            )
            return int(cast("CursorResult[Any]", result).rowcount)

    def purge_expired(self) -> dict[str, int]:
        """Delete what can no longer be used, in one transaction; how many of each.

        A signing key past ``published_until`` (withdrawn from the JWKS: every token it
        signed has expired) goes with its private part; a client secret past its grace
        period goes with its hash; so do expired revocations and used assertions.
        """
        now = _utcnow()
        tables = {
            # <=: what signing_keys() and get_client() no longer return (they keep > now).
            "signing_keys": delete(SigningKeyRow).where(SigningKeyRow.published_until <= now),
            "client_secrets": delete(ClientSecretRow).where(ClientSecretRow.expires_at <= now),
            "revocations": delete(RevokedTokenRow).where(RevokedTokenRow.expires_at < now),
            "used_assertions": delete(UsedAssertionRow).where(UsedAssertionRow.expires_at < now),
        }
        with self.session() as session:
            return {
                name: int(cast("CursorResult[Any]", session.execute(statement)).rowcount)
                for name, statement in tables.items()
            }

    def purge_revocations(self) -> int:
        with self.session() as session:
            result = session.execute(
                delete(RevokedTokenRow).where(RevokedTokenRow.expires_at < _utcnow())
            )
            return int(cast("CursorResult[Any]", result).rowcount)


# The reads on the request path, built once (building a statement costs more than SQLite
# takes to answer it); their compiled forms are cached by SQLAlchemy.
_CLIENT_WITH_SECRETS = (
    select(
        *ClientRow.__table__.columns,
        ClientSecretRow.secret_hash,
        ClientSecretRow.expires_at.label("secret_expires_at"),
        ClientSecretRow.encrypted_secret,
    )
    .outerjoin(ClientSecretRow, ClientSecretRow.client_id == ClientRow.client_id)
    .where(ClientRow.client_id == bindparam("client_id"))
    .order_by(ClientSecretRow.id)
)
_IS_REVOKED = select(RevokedTokenRow.jti).where(RevokedTokenRow.jti == bindparam("jti"))


def new_secret() -> str:
    """A client secret: 256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)


def _record(row: Any, hashes: tuple[SecretHash, ...]) -> ClientRecord:
    """A record from a client's ORM row, or a plain row with the same columns."""
    return ClientRecord(
        client_id=row.client_id,
        auth_method=row.auth_method,
        scopes=tuple(row.scopes.split()),
        default_scopes=tuple(row.default_scopes.split())
        if row.default_scopes is not None
        else None,
        audiences=tuple(row.audiences.split()),
        token_ttl=row.token_ttl,
        enabled=row.enabled,
        created_at=_aware(row.created_at) or row.created_at,
        secrets=hashes,
        jwks=row.jwks,
        jwks_uri=row.jwks_uri,
        tls_client_auth=row.tls_client_auth,
        introspection=row.introspection,
        client_name=row.client_name,
        registration_token_hash=row.registration_token_hash,
        federated_issuer=row.federated_issuer,
        federated_subject=row.federated_subject,
        grant_types=tuple(row.grant_types.split()) if row.grant_types else ("client_credentials",),
    )


def _issuer(row: TrustedIssuerRow) -> TrustedIssuerRecord:
    return TrustedIssuerRecord(
        name=row.name,
        issuer=row.issuer,
        jwks_url=row.jwks_url,
        audience=row.audience,
        max_lifetime=row.max_lifetime,
        created_at=_aware(row.created_at) or row.created_at,
    )


def _key(row: SigningKeyRow, private_jwk: str) -> SigningKeyRecord:
    return SigningKeyRecord(
        kid=row.kid,
        alg=row.alg,
        private_jwk=private_jwk,
        created_at=_aware(row.created_at) or row.created_at,
        retired_at=_aware(row.retired_at),
        published_until=_aware(row.published_until),
    )


def _prepare_sqlite_file(url: str, *, create: bool) -> None:
    """An SQLite store's file readable by its owner only, in a directory made ``0700``.

    SQLite makes its journal and WAL files with the database file's permissions.
    """
    name = url.split(":///", 1)[1] if ":///" in url else ""
    if not name or name == ":memory:" or name.startswith("file:"):
        return
    path = Path(name)
    if path.exists():
        if os.name == "posix" and path.stat().st_mode & 0o077:
            logger.warning("authkestra server: %s was readable by others: made 0600", path)
            path.chmod(0o600)
        return
    if not create:
        raise StoreMissing(f"no store at {path}")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise NotADirectoryError(errno.ENOTDIR, "Not a directory", str(parent))
            break
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _sqlite_pragmas(dbapi_connection: object, _record: object) -> None:
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    # WAL lets the server read while a CLI command writes; foreign keys enforce the cascade.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
