"""What can no longer be used is deleted: withdrawn signing keys (private parts and all),
secrets past their grace, expired revocations and used assertions."""

from __future__ import annotations

import io
import json
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

from authkestra.cli import Environment, main
from authkestra.server.housekeeping import purge
from authkestra.server.keys import generate_key
from authkestra.server.store import Store
from tests.server.harness import in_process_server
from tests.support.stores import made_store


def run(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(args), Environment(environ={}, stdout=out, stderr=err))
    return code, out.getvalue(), err.getvalue()


def column(path: Path, query: str) -> list[str]:
    with sqlite3.connect(path) as connection:
        values = [row[0] for row in connection.execute(query)]
    connection.close()
    return values


def test_a_key_withdrawn_at_once_is_deleted_with_its_private_part(tmp_path: Path) -> None:
    path = tmp_path / "authkestra.db"
    db = made_store(path)
    assert run("keys", "rotate", "--db", db, "--keep-old-for", "600")[0] == 0
    earlier = set(column(path, "SELECT kid FROM signing_keys"))
    assert len(earlier) == 2  # the first key, and the one that will take over
    code, out, err = run(
        "keys", "rotate", "--db", db, "--publish-ahead", "0", "--keep-old-for", "0"
    )
    assert code == 0, err
    newest = out.split()[3]
    # Both earlier keys were withdrawn from the JWKS at once: deleted, private parts too.
    assert column(path, "SELECT kid FROM signing_keys") == [newest]
    assert [
        k["kid"] for k in json.loads(run("keys", "list", "--db", db, "--format", "json")[1])
    ] == [newest]


def test_secrets_past_their_grace_are_deleted(tmp_path: Path) -> None:
    path = tmp_path / "authkestra.db"
    db = made_store(path)
    assert run("clients", "create", "svc", "--scope", "read", "--db", db)[0] == 0
    for _ in range(3):
        code, _, err = run("clients", "rotate-secret", "svc", "--grace", "0", "--db", db)
        assert code == 0, err
    # Each rotation ends the earlier secrets now, and deletes what has ended: only the
    # current secret is left.
    assert len(column(path, "SELECT secret_hash FROM client_secrets")) == 1
    assert run("clients", "rotate-secret", "svc", "--grace", "3600", "--db", db)[0] == 0
    assert len(column(path, "SELECT secret_hash FROM client_secrets")) == 2  # one in its grace


def test_purge_deletes_exactly_what_has_expired(tmp_path: Path) -> None:
    db = made_store(tmp_path / "authkestra.db")
    store = Store(db)
    try:
        past = datetime.now(timezone.utc) - timedelta(seconds=1)
        future = datetime.now(timezone.utc) + timedelta(hours=1)
        store.revoke("gone", past)
        store.revoke("kept", future)
        store.use_assertion("svc", "old-jti", past)
        store.use_assertion("svc", "new-jti", future)
        store.add_signing_key("k1", "ES256", json.dumps({"kty": "EC"}), retire_others_after=None)
        store.add_signing_key(
            "k2", "ES256", json.dumps({"kty": "EC"}), retire_others_after=timedelta(0)
        )
        deleted = purge(store)
        assert deleted["revocations"] == 1 and deleted["used_assertions"] == 1
        assert deleted["signing_keys"] == 1  # k1, withdrawn when k2 took over
        assert [jti for jti, _ in store.revocations()] == ["kept"]
        assert [key.kid for key in store.signing_keys(private=False)] == ["k2"]
        assert purge(store) == {
            "signing_keys": 0,
            "client_secrets": 0,
            "revocations": 0,
            "used_assertions": 0,
        }
    finally:
        store.close()


def test_a_server_purges_when_it_starts(tmp_path: Path) -> None:
    path = tmp_path / "authkestra.db"
    db = made_store(path)
    store = Store(db)
    for kid in ("old", "new"):  # the new one withdraws the old one at once
        _, private_jwk = generate_key("ES256")
        store.add_signing_key(kid, "ES256", private_jwk, retire_others_after=timedelta(0))
    store.close()
    assert set(column(path, "SELECT kid FROM signing_keys")) == {"old", "new"}
    with in_process_server(tmp_path / "server", db=db):
        assert column(path, "SELECT kid FROM signing_keys") == ["new"]
