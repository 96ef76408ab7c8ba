"""The store at rest: owner-only files, secrets sealed under the master key, rewrap.

Through ``authkestra init`` / ``clients`` / ``keys`` in-process and the store itself;
the bytes on disk are read back with sqlite3, as someone who copied the file would.
"""

from __future__ import annotations

import io
import json
import sqlite3
import stat
from collections.abc import Mapping
from pathlib import Path

import pytest

from authkestra.cli import Environment, main
from authkestra.server.context import open_store
from authkestra.server.master_key import (
    SEALED_PREFIX,
    MasterKey,
    MasterKeyError,
    MasterKeyExists,
)
from authkestra.server.settings import ServerSettings
from authkestra.server.store import Store, StoreMissing
from tests.server.harness import in_process_server, verify_with_jwks
from tests.support.stores import made_store


def run(*args: str, environ: Mapping[str, str] | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(args), Environment(environ=dict(environ or {}), stdout=out, stderr=err))
    return code, out.getvalue(), err.getvalue()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def rows(path: Path, query: str) -> list[tuple[str, ...]]:
    with sqlite3.connect(path) as connection:
        found = list(connection.execute(query))
    connection.close()
    return found


def sealed_values(path: Path) -> dict[str, str]:
    """Every value that must be sealed: signing keys' private JWKs, the HMAC key."""
    values = {
        f"key:{kid}": jwk for kid, jwk in rows(path, "SELECT kid, private_jwk FROM signing_keys")
    }
    values.update(
        {
            f"state:{name}": value
            for name, value in rows(path, "SELECT name, value FROM server_state")
            if name in ("client_secret_hmac_key", "master_key_check")
        }
    )
    return values


@pytest.fixture(autouse=True)
def _owner_only_umask() -> None:
    """Nothing here relies on the umask: the tests run as a permissive one would leave files."""
    import os

    old = os.umask(0o022)
    yield
    os.umask(old)


# -- init: the files and their modes -------------------------------------------------------


def test_init_makes_an_owner_only_store_in_an_owner_only_directory(tmp_path: Path) -> None:
    path = tmp_path / "state" / "authkestra.db"
    code, out, err = run("init", "--db", f"sqlite:///{path}")
    assert code == 0, err
    assert out == f"store sqlite:///{path} made\n"
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700
    key = Path(f"{path}.master-key")
    assert mode(key) == 0o600
    assert f"made the store's master key at {key}" in err
    # Again: brought up to date, nothing made, the same key.
    before = key.read_text()
    code, out, err = run("init", "--db", f"sqlite:///{path}")
    assert code == 0, err
    assert out.endswith("is up to date\n")
    assert "made the store's master key" not in err
    assert key.read_text() == before


def test_an_existing_store_readable_by_others_is_made_owner_only(tmp_path: Path) -> None:
    db = made_store(tmp_path / "authkestra.db")
    (tmp_path / "authkestra.db").chmod(0o644)
    code, _, err = run("clients", "list", "--db", db)
    assert code == 0, err
    assert mode(tmp_path / "authkestra.db") == 0o600


# -- sealed at rest --------------------------------------------------------------------------


def test_no_private_key_or_hmac_key_is_in_the_file_in_plaintext(tmp_path: Path) -> None:
    path = tmp_path / "authkestra.db"
    db = made_store(path)
    assert run("clients", "create", "billing", "--scope", "read", "--db", db)[0] == 0
    assert run("keys", "rotate", "--db", db, "--keep-old-for", "600")[0] == 0
    with in_process_server(tmp_path / "server", db=db) as server:
        private = [json.loads(r.private_jwk) for r in server.ctx.store.signing_keys()]
        hmac_key = server.ctx.store.state("client_secret_hmac_key", lambda: "unused")
    assert len(private) == 2 and all("d" in jwk for jwk in private)
    values = sealed_values(path)
    assert {name for name in values if name.startswith("key:")} == {
        f"key:{jwk['kid']}" for jwk in private
    }
    assert "state:client_secret_hmac_key" in values
    assert all(value.startswith(SEALED_PREFIX) for value in values.values()), values
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("authkestra.db*") if p.is_file())
    for jwk in private:
        for member in ("d", "p", "q", "dp", "dq", "qi"):
            if member in jwk:
                assert jwk[member].encode() not in raw
    assert hmac_key.encode() not in raw


def test_a_sealed_value_moved_to_another_row_does_not_open(tmp_path: Path) -> None:
    key = MasterKey.generate(tmp_path / "key")
    sealed = key.seal("secret", "signing-key:a")
    assert key.open(sealed, "signing-key:a") == "secret"
    with pytest.raises(MasterKeyError, match="does not open this store's signing-key:b"):
        key.open(sealed, "signing-key:b")


def test_a_store_written_in_plaintext_is_sealed_when_next_opened(tmp_path: Path) -> None:
    """A store from before sealing: its plaintext keys are sealed in place, and still sign."""
    path = tmp_path / "authkestra.db"
    store = Store(f"sqlite:///{path}", master_key=MasterKey.generate(tmp_path / "unused"))
    store.migrate()
    store.close()
    private = '{"kty":"oct","k":"c2VjcmV0LXNpZ25pbmcta2V5LWJ5dGVzLXRoYXQtYXJlLWxvbmc","kid":"old"}'
    with sqlite3.connect(path) as connection:
        connection.execute(
            "INSERT INTO signing_keys (kid, alg, private_jwk, created_at)"
            " VALUES ('old', 'HS256', ?, '2026-01-01 00:00:00')",
            (private,),
        )
        connection.execute(
            "INSERT INTO server_state (name, value) VALUES ('client_secret_hmac_key', 'plainhmac')"
        )
    connection.close()
    key_file = tmp_path / "operator.key"
    MasterKey.generate(key_file)
    settings = ServerSettings(db=f"sqlite:///{path}", master_key_file=key_file)
    store = open_store(settings, create=False)
    try:
        assert store.signing_keys()[0].private_jwk == private
        assert store.state("client_secret_hmac_key", lambda: "unused") == "plainhmac"
    finally:
        store.close()
    values = sealed_values(path)
    assert set(values) == {"key:old", "state:client_secret_hmac_key", "state:master_key_check"}
    assert all(value.startswith(SEALED_PREFIX) for value in values.values())
    assert b"plainhmac" not in path.read_bytes()


# -- the master key --------------------------------------------------------------------------


def test_a_wrong_master_key_is_one_line_before_anything_is_read(tmp_path: Path) -> None:
    db = made_store(tmp_path / "authkestra.db")
    other = tmp_path / "other.key"
    MasterKey.generate(other)
    code, out, err = run("clients", "list", "--db", db, "--master-key-file", str(other))
    assert code == 3
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("authkestra: error: the master key")
    assert "sealed under another master key" in err


def test_a_master_key_file_others_may_read_is_refused(tmp_path: Path) -> None:
    db = made_store(tmp_path / "authkestra.db")
    key = Path(f"{tmp_path}/authkestra.db.master-key")
    key.chmod(0o640)
    code, _, err = run("keys", "list", "--db", db, "--format", "json")
    assert code == 3
    assert err.count("\n") == 1
    assert err.startswith(f"authkestra: error: the master key file {key}")
    assert err.strip().endswith(f"chmod 600 {key}")
    assert "may be read by others (mode 0640)" in err
    assert "Traceback" not in err


def test_a_malformed_master_key_file_is_named(tmp_path: Path) -> None:
    db = made_store(tmp_path / "authkestra.db")
    bad = tmp_path / "bad.key"
    bad.write_text("not-a-key\n")
    bad.chmod(0o600)
    code, _, err = run("clients", "list", "--db", db, "--master-key-file", str(bad))
    assert code == 3
    assert f"the master key file {bad} does not hold a master key" in err


def test_a_sealed_store_whose_key_is_missing_is_not_given_a_new_one(tmp_path: Path) -> None:
    path = tmp_path / "authkestra.db"
    db = made_store(path)
    Path(f"{path}.master-key").unlink()
    code, _, err = run("clients", "list", "--db", db)
    assert code == 3
    assert "sealed under a master key that is not at" in err
    assert not Path(f"{path}.master-key").exists()


def test_a_store_other_than_sqlite_needs_a_master_key(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path}/a.db")
    store.sealer.db_url = "postgresql://db.example/authkestra"  # where no default key can live
    with pytest.raises(MasterKeyError, match=r"needs a master key .* --master-key-file"):
        store.sealer.key
    store.close()


def test_the_master_key_setting_comes_from_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "authkestra.db"
    key = tmp_path / "kek"
    MasterKey.generate(key)
    environ = {"AUTHKESTRA_SERVER_MASTER_KEY_FILE": str(key)}
    code, _, err = run("init", "--db", f"sqlite:///{path}", environ=environ)
    assert code == 0, err
    assert not Path(f"{path}.master-key").exists()
    assert run("clients", "list", "--db", f"sqlite:///{path}", environ=environ)[0] == 0
    # Without it, the store does not open, and no key is made beside it.
    code, _, err = run("clients", "list", "--db", f"sqlite:///{path}")
    assert code == 3 and "not at" in err


# -- rewrap ----------------------------------------------------------------------------------


def test_rewrap_in_place_reseals_and_tokens_stay_valid(tmp_path: Path) -> None:
    path = tmp_path / "authkestra.db"
    db = made_store(path)
    code, out, err = run(
        "clients", "create", "svc", "--scope", "read", "--format", "json", "--db", db
    )
    assert code == 0, err
    secret = json.loads(out)["client_secret"]
    with in_process_server(tmp_path / "before", db=db) as server:
        token = server.access_token(("svc", secret))
    old_key_text = Path(f"{path}.master-key").read_text()
    before = sealed_values(path)

    code, out, err = run("keys", "rewrap", "--db", db)
    assert code == 0, err
    # the signing key and the HMAC key
    assert out == f"2 secrets sealed under the master key {path}.master-key\n"
    key_file = Path(f"{path}.master-key")
    assert key_file.read_text() != old_key_text
    assert mode(key_file) == 0o600
    assert not Path(f"{path}.master-key.new").exists()
    after = sealed_values(path)
    assert set(after) == set(before)
    assert all(after[name] != before[name] for name in before)

    with in_process_server(tmp_path / "after", db=db) as server:
        assert verify_with_jwks(token, server.jwks())["sub"] == "svc"
        assert server.token(("svc", secret)).status_code == 200  # the HMAC key still checks it
    # The old key no longer opens the store.
    old = tmp_path / "old.key"
    old.write_text(old_key_text)
    old.chmod(0o600)
    code, _, err = run("clients", "list", "--db", db, "--master-key-file", str(old))
    assert code == 3 and "another master key" in err


def test_rewrap_to_a_new_key_file(tmp_path: Path) -> None:
    path = tmp_path / "authkestra.db"
    db = made_store(path)
    new = tmp_path / "vault" / "kek"
    new.parent.mkdir()
    code, out, err = run("keys", "rewrap", "--db", db, "--new-master-key-file", str(new))
    assert code == 0, err
    assert out.endswith(f"under the master key {new}\n")
    assert f"from now on give --master-key-file {new}" in err
    assert mode(new) == 0o600
    assert run("keys", "list", "--db", db, "--master-key-file", str(new))[0] == 0
    # Then from the operator's key to another: the default is no longer the store's key.
    code, _, err = run("keys", "rewrap", "--db", db, "--master-key-file", str(new))
    assert code == 2 and "give --new-master-key-file" in err


# -- which store, always said; never made by a management command ---------------------------


@pytest.mark.parametrize(
    "command",
    [
        ("clients", "list"),
        ("clients", "show", "nobody"),
        ("clients", "create", "x", "--scope", "read"),
        ("clients", "delete", "nobody"),
        ("clients", "rotate-secret", "nobody"),
        ("keys", "list"),
        ("keys", "rotate"),
        ("keys", "rewrap"),
    ],
)
def test_management_commands_never_make_a_store(tmp_path: Path, command: tuple[str, ...]) -> None:
    path = tmp_path / "typo" / "authkestra.db"
    code, out, err = run(*command, "--db", f"sqlite:///{path}")
    assert code == 3
    assert out == ""
    assert err == (
        f"authkestra: error: no store at sqlite:///{path}: make it with 'authkestra init'"
        " (or start 'authkestra serve'), or give --db (or AUTHKESTRA_SERVER_DB) to use another\n"
    )
    assert not path.parent.exists()


@pytest.mark.parametrize(
    "command",
    [
        ("clients", "list"),
        ("clients", "show", "svc"),
        ("clients", "create", "other", "--scope", "read"),
        ("clients", "rotate-secret", "svc"),
        ("clients", "delete", "svc"),
        ("keys", "list"),
        ("keys", "rotate"),
    ],
)
def test_every_management_command_says_which_store(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    db = made_store(tmp_path / "authkestra.db")
    assert run("clients", "create", "svc", "--scope", "read", "--db", db)[0] == 0
    code, _, err = run(*command, "--db", db)
    assert code == 0, err
    assert err.splitlines()[0] == f"authkestra: store {db}"


def test_the_store_opened_by_store_missing_is_typed(tmp_path: Path) -> None:
    with pytest.raises(StoreMissing):
        Store(f"sqlite:///{tmp_path}/absent.db", create=False)
    assert not (tmp_path / "absent.db").exists()


def test_a_master_key_file_is_never_overwritten(tmp_path: Path) -> None:
    first = MasterKey.generate(tmp_path / "kek")
    text = (tmp_path / "kek").read_text()
    with pytest.raises(MasterKeyExists, match="exists already: not overwritten"):
        MasterKey.generate(tmp_path / "kek")
    assert (tmp_path / "kek").read_text() == text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kek"]  # nothing left aside
    assert MasterKey.load(tmp_path / "kek").open(first.seal("x", "here"), "here") == "x"


def test_two_servers_opening_a_new_store_at_once_share_one_master_key(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    url = f"sqlite:///{tmp_path}/authkestra.db"
    migrated = Store(url)  # the schema, nothing sealed yet (and so no master key)
    migrated.migrate()
    migrated.close()
    assert not Path(f"{tmp_path}/authkestra.db.master-key").exists()

    def open_and_seal(_: int) -> Store:
        store = Store(url)
        store.seal_secrets()
        return store

    with ThreadPoolExecutor(4) as pool:
        stores = list(pool.map(open_and_seal, range(4)))
    try:
        sealed = stores[0].sealer.key.seal("x", "here")
        assert all(store.sealer.key.open(sealed, "here") == "x" for store in stores)
    finally:
        for store in stores:
            store.close()
