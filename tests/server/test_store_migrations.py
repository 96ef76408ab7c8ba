"""The store's schema comes from versioned Alembic migrations; data survives reopening."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from authkestra.server import ServerSettings
from authkestra.server.context import build_context, hasher_for
from authkestra.server.store import ClientExists, Store, UnknownClient
from tests.server.harness import in_process_server

#: The newest schema version (migrations/versions/).
HEAD = "0007"
TABLES = {
    "alembic_version",
    "clients",
    "client_secrets",
    "signing_keys",
    "revoked_tokens",
    "server_state",
    "used_assertions",
}


def _schema(path: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(path) as connection:
        rows = connection.execute(
            "SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name"
        ).fetchall()
    connection.close()
    return [(str(name), str(sql)) for name, sql in rows]


def test_fresh_store_is_migrated_to_the_newest_version(tmp_path: Path) -> None:
    path = tmp_path / "authkestra.db"
    store = Store(f"sqlite:///{path}")
    assert store.schema_version() is None
    store.migrate()
    assert store.schema_version() == HEAD
    store.close()
    with sqlite3.connect(path) as connection:
        versions = connection.execute("SELECT version_num FROM alembic_version").fetchall()
        tables = {
            r[0] for r in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
        }
    connection.close()
    assert versions == [(HEAD,)]
    assert tables >= TABLES


def test_migrating_twice_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "authkestra.db"
    store = Store(f"sqlite:///{path}")
    store.migrate()
    store.create_client(
        "svc",
        secret_hash="0" * 64,
        auth_method="client_secret_basic",
        scopes=("read",),
        audiences=(),
    )
    schema = _schema(path)
    store.migrate()
    assert store.schema_version() == HEAD
    assert _schema(path) == schema
    assert store.get_client("svc").scopes == ("read",)
    store.close()
    # And from another process's point of view: a new Store on the same file.
    again = Store(f"sqlite:///{path}")
    again.migrate()
    assert again.schema_version() == HEAD
    assert [c.client_id for c in again.list_clients()] == ["svc"]
    again.close()


def test_server_start_migrates_and_a_later_start_keeps_everything(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/authkestra.db"
    with in_process_server(tmp_path / "first", db=db) as first:
        assert first.ctx.store.schema_version() == HEAD
        client = first.add_client("svc", scopes=("read",))
        token = first.access_token(client)
        kid = first.jwks()["keys"][0]["kid"]
        first.revoke(token, client)
    with in_process_server(tmp_path / "second", db=db) as second:
        # The client and its secret (the HMAC key is kept in the store), the signing key,
        # and the revocation all survived the restart.
        assert second.token(client).status_code == 200
        assert [k["kid"] for k in second.jwks()["keys"]] == [kid]
        assert second.introspect(token, client) == {"active": False}
        fresh = second.access_token(client)
        assert second.introspect(fresh, client)["active"] is True


def test_migrate_false_leaves_the_schema_alone(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/authkestra.db"
    settings = ServerSettings(db=db, migrate=False)
    with pytest.raises(Exception, match="no such table"):
        build_context(settings)
    store = Store(db)
    assert store.schema_version() is None
    store.close()


def test_store_round_trips_a_client(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/authkestra.db"
    store = Store(db)
    store.migrate()
    store.create_client(
        "svc.a~b-c",
        secret_hash="a" * 64,
        auth_method="client_secret_post",
        scopes=("read", "write"),
        audiences=("https://api.example.test/",),
        default_scopes=("read",),
        token_ttl=60,
    )
    with pytest.raises(ClientExists):
        store.create_client(
            "svc.a~b-c",
            secret_hash="b" * 64,
            auth_method="client_secret_basic",
            scopes=(),
            audiences=(),
        )
    store.close()
    reopened = Store(db)
    client = reopened.get_client("svc.a~b-c")
    assert client.auth_method == "client_secret_post"
    assert client.scopes == ("read", "write")
    assert client.default_scopes == ("read",)
    assert client.audiences == ("https://api.example.test/",)
    assert client.token_ttl == 60
    assert client.enabled is True
    assert client.created_at.tzinfo is not None
    assert [s.value for s in client.secrets] == ["a" * 64]
    assert reopened.find_client("nobody") is None
    with pytest.raises(UnknownClient):
        reopened.get_client("nobody")
    for operation in (
        lambda: reopened.set_enabled("nobody", False),
        lambda: reopened.delete_client("nobody"),
        lambda: reopened.rotate_secret("nobody", "c" * 64, timedelta(0)),
    ):
        with pytest.raises(UnknownClient):
            operation()
    reopened.close()


def test_generated_hmac_key_is_shared_through_the_store(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/authkestra.db"
    store = Store(db)
    store.migrate()
    settings = ServerSettings(db=db)
    first = hasher_for(settings, store).hash("secret")
    store.close()
    other = Store(db)
    assert hasher_for(settings, other).hash("secret") == first
    configured = ServerSettings(db=db, secret_key="x" * 32)
    assert hasher_for(configured, other).hash("secret") != first
    other.close()
