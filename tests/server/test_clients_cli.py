"""``authkestra clients`` in-process through ``main(argv, Environment)``.

The console script itself runs in test_real_server.py.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import re
import sqlite3
from collections.abc import Mapping
from pathlib import Path

import pytest

from authkestra import AuthMethod
from authkestra.cli import Environment, main
from authkestra.errors import InvalidClient
from authkestra.server.client_auth import ClientDirectory
from authkestra.server.oauth_request import ClientCredentials
from authkestra.server.secret_hashing import SecretHasher
from authkestra.server.store import Store
from tests.server.harness import InProcessServer, assert_oauth_error
from tests.support.stores import made_store

SECRET = re.compile(r"[A-Za-z0-9_-]{43}")


def run(*args: str, environ: Mapping[str, str] | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(args), Environment(environ=dict(environ or {}), stdout=out, stderr=err))
    return code, out.getvalue(), err.getvalue()


def create(db: str, name: str, *args: str) -> tuple[str, str]:
    code, out, err = run("clients", "create", name, *args, "--format", "json", "--db", db)
    assert code == 0, err
    document = json.loads(out)
    return document["client_id"], document["client_secret"]


def assert_secret(secret: str) -> None:
    assert SECRET.fullmatch(secret), secret
    assert len(base64.urlsafe_b64decode(secret + "=")) == 32  # 256 bits


def all_rows(path: Path) -> list[str]:
    """Every value of every row of every table, as text."""
    with sqlite3.connect(path) as connection:
        tables = [
            r[0] for r in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
        ]
        values = []
        for table in tables:
            for row in connection.execute(f'SELECT * FROM "{table}"'):
                values.extend(str(v) for v in row)
    connection.close()
    return values


# -- create --------------------------------------------------------------------------------


def test_create_json_prints_exactly_the_id_and_a_256_bit_secret(server: InProcessServer) -> None:
    code, out, err = run(
        "clients", "create", "billing", "--scope", "read", "--format", "json", "--db", server.db
    )
    assert code == 0, err
    document = json.loads(out)
    assert set(document) == {"client_id", "client_secret"}
    assert document["client_id"] == "billing"
    assert_secret(document["client_secret"])
    assert server.token(("billing", document["client_secret"])).status_code == 200


def test_create_text_output(server: InProcessServer) -> None:
    code, out, err = run("clients", "create", "reports", "--db", server.db)
    assert code == 0, err
    match = re.fullmatch(r"client_id:     reports\nclient_secret: (\S+)\n", out)
    assert match, out
    assert_secret(match.group(1))
    assert "only this once" in err
    assert match.group(1) not in err
    assert server.token(("reports", match.group(1))).status_code == 200


def test_every_secret_is_new(server: InProcessServer) -> None:
    secrets_seen = {create(server.db, f"svc-{i}")[1] for i in range(5)}
    assert len(secrets_seen) == 5


def test_create_with_options_is_what_the_server_enforces(server: InProcessServer) -> None:
    client = create(
        server.db, "svc.a~b-c",
        "--scope", "read write", "--scope", "admin", "--default-scope", "read",
        "--audience", "https://api.example.test/", "--token-ttl", "120",
        "--auth-method", "client_secret_post",
    )  # fmt: skip
    response = server.token(client, post=True)
    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "read"
    assert response.json()["expires_in"] == 120
    assert_oauth_error(server.token(client), "invalid_client")  # bound to client_secret_post
    code, out, _ = run("clients", "show", "svc.a~b-c", "--format", "json", "--db", server.db)
    assert code == 0
    shown = json.loads(out)
    assert shown["scopes"] == ["read", "write", "admin"]
    assert shown["default_scopes"] == ["read"]
    assert shown["audiences"] == ["https://api.example.test/"]
    assert shown["token_ttl"] == 120
    assert shown["auth_method"] == "client_secret_post"


def test_duplicate_name_is_an_error(server: InProcessServer) -> None:
    _, secret = create(server.db, "billing")
    code, out, err = run("clients", "create", "billing", "--db", server.db)
    assert code == 3
    assert "already exists" in err
    assert out == ""
    assert server.token(("billing", secret)).status_code == 200  # the first one is untouched


@pytest.mark.parametrize(
    "args",
    [
        ["bad name"],
        ["svc/1"],
        ["svc:1"],
        ["a" * 129],
        ["\u00e9t\u00e9"],
        ["svc", "--scope", 'bad"scope'],
        ["svc", "--scope", "read", "--default-scope", "write"],
        ["svc", "--audience", ""],
        ["svc", "--auth-method", "none"],
        ["svc", "--auth-method", "private_key_jwt"],
        ["svc", "--token-ttl", "0"],
        ["svc", "--token-ttl", "86401"],
        ["svc", "--format", "yaml"],
    ],
)
def test_create_refuses_bad_arguments(tmp_path: Path, args: list[str]) -> None:
    db = made_store(tmp_path / "authkestra.db")
    code, out, _ = run("clients", "create", *args, "--db", db)
    assert code == 2
    assert "client_secret" not in out


# -- list / show ---------------------------------------------------------------------------


def test_list(server: InProcessServer) -> None:
    create(server.db, "beta", "--scope", "read")
    create(server.db, "alpha")
    run("clients", "disable", "beta", "--db", server.db)
    code, out, _ = run("clients", "list", "--db", server.db)
    assert code == 0
    assert out.splitlines() == [
        "CLIENT_ID  AUTH_METHOD          ENABLED  SCOPES  AUDIENCES  CAN_INTROSPECT",
        "alpha      client_secret_basic  yes      -       -          -",
        "beta       client_secret_basic  no       read    -          -",
    ]
    assert run("clients", "list", "--format", "table", "--db", server.db)[1] == out
    assert run("clients", "list", "--format", "text", "--db", server.db)[1] == out
    code, out, _ = run("clients", "list", "--format", "json", "--db", server.db)
    listed = json.loads(out)
    assert [c["client_id"] for c in listed] == ["alpha", "beta"]
    assert [c["enabled"] for c in listed] == [True, False]


def test_show_never_prints_the_secret_or_its_hash(server: InProcessServer) -> None:
    _, secret = create(server.db, "billing")
    _, new_secret = json.loads(
        run("clients", "rotate-secret", "billing", "--format", "json", "--db", server.db)[1]
    ).values()
    hashes = [v for v in all_rows(server.db_path) if re.fullmatch(r"[0-9a-f]{64}", v)]
    assert len(hashes) >= 2
    for output in ("text", "json"):
        code, out, err = run("clients", "show", "billing", "--format", output, "--db", server.db)
        assert code == 0, err
        for value in (secret, new_secret, *hashes):
            assert value not in out and value not in err
    shown = json.loads(run("clients", "show", "billing", "--format", "json", "--db", server.db)[1])
    assert shown["client_id"] == "billing"
    # Each active secret by its expiry: the old one in its grace period, the new one not.
    expiries = [secret["expires_at"] for secret in shown["secrets"]]
    assert len(expiries) == 2 and "never (the current one)" in expiries
    assert all(set(secret) == {"expires_at"} for secret in shown["secrets"])
    assert not {"secret", "client_secret", "secret_hash"} & set(shown)


def test_show_is_a_readable_record(server: InProcessServer) -> None:
    create(server.db, "billing", "--scope", "read write", "--audience", "https://api.test/")
    code, out, err = run("clients", "show", "billing", "--db", server.db)
    assert code == 0, err
    lines = dict(line.split(":", 1) for line in out.splitlines() if not line.startswith(" "))
    assert lines["scopes"].strip() == "read write"
    assert lines["audiences"].strip() == "https://api.test/"
    assert lines["default_scopes"].strip() == "-"
    assert lines["enabled"].strip() == "yes"
    assert "  - expires_at=never (the current one)" in out.splitlines()
    for python_repr in ("[", "]", "None", "True", "{", "'"):
        assert python_repr not in out


# -- rotate-secret ---------------------------------------------------------------------------


def test_rotate_secret_keeps_the_old_one_during_the_grace_period(server: InProcessServer) -> None:
    client_id, old = create(server.db, "billing")
    code, out, err = run(
        "clients", "rotate-secret", "billing", "--format", "json", "--db", server.db
    )
    assert code == 0, err
    document = json.loads(out)
    assert set(document) == {"client_id", "client_secret"}
    new = document["client_secret"]
    assert_secret(new)
    assert new != old
    assert server.token((client_id, old)).status_code == 200
    assert server.token((client_id, new)).status_code == 200


def test_rotate_secret_text_says_until_when(server: InProcessServer) -> None:
    create(server.db, "billing")
    code, out, err = run("clients", "rotate-secret", "billing", "--grace", "60", "--db", server.db)
    assert code == 0
    assert re.fullmatch(r"client_id:     billing\nclient_secret: \S{43}\n", out)
    assert "keeps working until" in err


def test_rotate_secret_without_grace_refuses_the_old_secret_at_once(
    server: InProcessServer,
) -> None:
    client_id, old = create(server.db, "billing")
    code, out, _ = run(
        "clients", "rotate-secret", "billing", "--grace", "0", "--format", "json", "--db", server.db
    )
    assert code == 0
    new = json.loads(out)["client_secret"]
    assert_oauth_error(server.token((client_id, old)), "invalid_client", 401)
    assert server.token((client_id, new)).status_code == 200


def test_a_second_rotation_shortens_the_first_grace(server: InProcessServer) -> None:
    client_id, first = create(server.db, "billing")
    second = json.loads(
        run("clients", "rotate-secret", "billing", "--format", "json", "--db", server.db)[1]
    )["client_secret"]
    third = json.loads(
        run(
            "clients",
            "rotate-secret",
            "billing",
            "--grace",
            "0",
            "--format",
            "json",
            "--db",
            server.db,
        )[1]
    )["client_secret"]
    for secret in (first, second):
        assert_oauth_error(server.token((client_id, secret)), "invalid_client", 401)
    assert server.token((client_id, third)).status_code == 200


# -- disable / enable / delete -------------------------------------------------------------


def test_disable_enable_delete(server: InProcessServer) -> None:
    client = create(server.db, "billing")
    code, out, _ = run("clients", "disable", "billing", "--db", server.db)
    assert (code, out) == (0, "billing disabled\n")
    assert_oauth_error(server.token(client), "invalid_client", 401)
    code, out, _ = run("clients", "enable", "billing", "--db", server.db)
    assert (code, out) == (0, "billing enabled\n")
    assert server.token(client).status_code == 200
    code, out, _ = run("clients", "delete", "billing", "--db", server.db)
    assert (code, out) == (0, "billing deleted\n")
    assert_oauth_error(server.token(client), "invalid_client", 401)
    assert run("clients", "show", "billing", "--db", server.db)[0] == 3
    # Its secrets went with it.
    assert not any("billing" in v for v in all_rows(server.db_path))


@pytest.mark.parametrize(
    "command",
    [["show"], ["rotate-secret"], ["disable"], ["enable"], ["delete"]],
)
def test_unknown_client_is_an_error(tmp_path: Path, command: list[str]) -> None:
    db = made_store(tmp_path / "authkestra.db")
    code, out, err = run("clients", *command, "nobody", "--db", db)
    assert code == 3
    assert "no client 'nobody'" in err
    assert "client_secret" not in out


@pytest.mark.parametrize(
    "command", [["create", "svc"], ["list"], ["show", "svc"], ["rotate-secret", "svc"]]
)
def test_bad_format_is_a_usage_error(tmp_path: Path, command: list[str]) -> None:
    db = made_store(tmp_path / "authkestra.db")
    code, _, err = run("clients", *command, "--format", "xml", "--db", db)
    assert code == 2
    assert "--format" in err


# -- --db and AUTHKESTRA_SERVER_DB --------------------------------------------------------


COMMANDS = [
    ["clients", "create", "new"],
    ["clients", "list"],
    ["clients", "show", "svc"],
    ["clients", "rotate-secret", "svc"],
    ["clients", "disable", "svc"],
    ["clients", "enable", "svc"],
    ["clients", "delete", "svc"],
    ["keys", "rotate"],
    ["keys", "list"],
]


def _keys(db: str) -> list[dict[str, object]]:
    code, out, err = run("keys", "list", "--db", db, "--format", "json")
    assert code == 0, err
    listed = json.loads(out)
    assert isinstance(listed, list)
    return listed


@pytest.mark.parametrize("command", COMMANDS, ids=[" ".join(c[:2]) for c in COMMANDS])
def test_every_command_uses_authkestra_db_and_db_wins(tmp_path: Path, command: list[str]) -> None:
    """Store a (AUTHKESTRA_SERVER_DB) has the client "svc"; store b (--db) is empty."""
    a, b = made_store(tmp_path / "a.db"), made_store(tmp_path / "b.db")
    create(a, "svc")
    if command == ["keys", "list"]:
        run("keys", "rotate", "--db", a)
    environ = {"AUTHKESTRA_SERVER_DB": a}
    by_env = run(*command, environ=environ)
    by_flag = run(*command, "--db", b, environ=environ)
    name = " ".join(command[:2])
    if name == "clients create":
        assert (by_env[0], by_flag[0]) == (0, 0)
        assert [c["client_id"] for c in _list(a)] == ["new", "svc"]
        assert [c["client_id"] for c in _list(b)] == ["new"]
    elif name == "clients list":
        assert by_env[0] == 0 and by_env[1].splitlines()[1].split()[:3] == [
            "svc",
            "client_secret_basic",
            "yes",
        ]
        assert by_flag[0] == 0 and len(by_flag[1].splitlines()) == 1  # the header alone
    elif name == "keys rotate":
        assert (by_env[0], by_flag[0]) == (0, 0)
        assert len(_keys(a)) == 2  # the first key, and the new one
        assert len(_keys(b)) == 2
    elif name == "keys list":
        assert len(by_env[1].splitlines()) == 3  # the header, then two keys
        assert len(by_flag[1].splitlines()) == 1
    else:  # commands on the client "svc": found in a, not in b
        assert by_env[0] == 0, by_env[2]
        assert by_flag[0] == 3
        assert "no client 'svc'" in by_flag[2]


def _list(db: str) -> list[dict[str, object]]:
    code, out, err = run("clients", "list", "--format", "json", "--db", db)
    assert code == 0, err
    listed = json.loads(out)
    assert isinstance(listed, list)
    return listed


def test_disable_through_authkestra_db_reaches_that_store(tmp_path: Path) -> None:
    a, b = made_store(tmp_path / "a.db"), made_store(tmp_path / "b.db")
    create(a, "svc")
    create(b, "svc")
    assert run("clients", "disable", "svc", environ={"AUTHKESTRA_SERVER_DB": a})[0] == 0
    assert [c["enabled"] for c in _list(a)] == [False]
    assert [c["enabled"] for c in _list(b)] == [True]


def test_keys_rotate_through_authkestra_db_reaches_that_store(tmp_path: Path) -> None:
    a, b = made_store(tmp_path / "a.db"), made_store(tmp_path / "b.db")
    assert (
        run("keys", "rotate", "--keep-old-for", "60", environ={"AUTHKESTRA_SERVER_DB": a})[0] == 0
    )
    listed_a = run("keys", "list", "--format", "json", environ={"AUTHKESTRA_SERVER_DB": a})[1]
    assert len(json.loads(listed_a)) == 2
    listed_b = run(
        "keys", "list", "--db", b, "--format", "json", environ={"AUTHKESTRA_SERVER_DB": a}
    )[1]
    assert json.loads(listed_b) == []


def test_the_process_environment_is_not_read_behind_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    leak = tmp_path / "leak.db"
    monkeypatch.setenv("AUTHKESTRA_SERVER_DB", f"sqlite:///{leak}")
    monkeypatch.chdir(tmp_path)
    made_store(tmp_path / "authkestra.db")
    code, _, err = run("clients", "create", "svc", environ={})
    assert code == 0, err
    assert not leak.exists()
    assert (tmp_path / "authkestra.db").exists()  # the default, in the working directory


def test_unopenable_store_is_a_config_error(tmp_path: Path) -> None:
    code, _, err = run("clients", "list", "--db", f"sqlite:///{tmp_path}/no/such/dir/x.db")
    assert code == 3
    assert "no store at" in err and "authkestra init" in err
    assert not (tmp_path / "no").exists()  # nothing made on the way
    (tmp_path / "x.db").write_bytes(b"not a database at all, but a file of that name")
    (tmp_path / "x.db").chmod(0o600)
    code, _, err = run("clients", "list", "--db", f"sqlite:///{tmp_path}/x.db")
    assert code == 3
    assert "cannot open the SQLite store (file is not a database)" in err
    unreachable = "postgresql://user:pw-1234@127.0.0.1:1/db"
    code, _, err = run("clients", "list", environ={"AUTHKESTRA_SERVER_DB": unreachable})
    assert code == 4  # NETWORK: the database does not answer
    assert "cannot reach PostgreSQL" in err and "postgresql://user:***@127.0.0.1:1/db" in err
    assert "pw-1234" not in err


def test_a_password_on_the_command_line_is_refused_saying_how(tmp_path: Path) -> None:
    for flag, url in (
        ("--db", "postgresql://user:pw-1234@db/x"),
        ("--redis", "redis://:pw-1234@r"),
    ):
        code, out, err = run("serve", flag, url)
        assert code == 2
        assert out == "" and "pw-1234" not in err
        variable = f"AUTHKESTRA_SERVER_{flag[2:].upper()}"
        assert err == (
            f"authkestra: error: the {flag} URL holds a password, which any local user can"
            f" read on the command line: set {variable} instead, or put the URL in a file only"
            f" you can read and set {variable}_FILE\n"
        )
    code, _, err = run("clients", "list", "--db", "postgresql://user:pw-1234@db/x")
    assert code == 2 and "holds a password" in err


# -- secret hashing --------------------------------------------------------------------------


def test_store_holds_only_keyed_hashes(server: InProcessServer) -> None:
    _, first = create(server.db, "billing")
    second = json.loads(
        run("clients", "rotate-secret", "billing", "--format", "json", "--db", server.db)[1]
    )["client_secret"]
    values = all_rows(server.db_path)
    joined = "\n".join(values)
    for secret in (first, second):
        assert secret not in joined
        assert hashlib.sha256(secret.encode()).hexdigest() not in joined  # keyed, not plain
        assert base64.b64encode(secret.encode()).decode() not in joined
    assert sum(bool(re.fullmatch(r"[0-9a-f]{64}", v)) for v in values) == 2
    assert server.token(("billing", second)).status_code == 200


def test_configured_secret_key_is_used_and_not_stored(tmp_path: Path) -> None:
    key = "k" * 32
    db = made_store(tmp_path / "authkestra.db")
    environ = {"AUTHKESTRA_SERVER_SECRET_KEY": key, "AUTHKESTRA_SERVER_DB": db}
    code, out, err = run("clients", "create", "svc", "--format", "json", environ=environ)
    assert code == 0, err
    secret = json.loads(out)["client_secret"]
    expected = hmac.new(key.encode(), secret.encode(), hashlib.sha256).hexdigest()
    values = all_rows(tmp_path / "authkestra.db")
    assert expected in values
    assert key not in "\n".join(values)


def test_key_file(tmp_path: Path) -> None:
    key_file = tmp_path / "hmac.key"
    key_file.write_text("f" * 40 + "\n")
    key_file.chmod(0o600)
    db = made_store(tmp_path / "authkestra.db")
    environ = {"AUTHKESTRA_SERVER_SECRET_KEY_FILE": str(key_file), "AUTHKESTRA_SERVER_DB": db}
    code, out, err = run("clients", "create", "svc", "--format", "json", environ=environ)
    assert code == 0, err
    secret = json.loads(out)["client_secret"]
    expected = hmac.new(b"f" * 40, secret.encode(), hashlib.sha256).hexdigest()
    assert expected in all_rows(tmp_path / "authkestra.db")


@pytest.mark.parametrize(
    ("environ", "said"),
    [
        (
            {"AUTHKESTRA_SERVER_SECRET_KEY": "short"},
            "SECRET_KEY: secret_key must be at least 16 bytes",
        ),
        (
            {"AUTHKESTRA_SERVER_SECRET_KEY_FILE": "/nonexistent/hmac.key"},
            "SECRET_KEY_FILE: no secret key file at /nonexistent/hmac.key",
        ),
        (
            {"AUTHKESTRA_SERVER_SIGNING_ALG": "HS256"},
            "--signing-alg (AUTHKESTRA_SERVER_SIGNING_ALG)",
        ),
        ({"AUTHKESTRA_SERVER_CACHE_SECONDS": "soon"}, "AUTHKESTRA_SERVER_CACHE_SECONDS: Input"),
    ],
)
def test_bad_settings_are_a_config_error_naming_the_setting(
    tmp_path: Path, environ: dict[str, str], said: str
) -> None:
    db = made_store(tmp_path / "authkestra.db")
    code, out, err = run("clients", "create", "svc", "--db", db, environ=environ)
    assert code == 3
    assert err.startswith("authkestra: error: ")
    assert said in err
    assert err.count("\n") == 1
    assert out == ""


def test_a_key_file_others_may_read_is_refused(tmp_path: Path) -> None:
    key_file = tmp_path / "hmac.key"
    key_file.write_text("f" * 40 + "\n")
    key_file.chmod(0o644)
    code, _, err = run(
        "clients", "list", "--db", made_store(tmp_path / "authkestra.db"),
        environ={"AUTHKESTRA_SERVER_SECRET_KEY_FILE": str(key_file)},
    )  # fmt: skip
    assert code == 3
    assert err == (
        "authkestra: error: AUTHKESTRA_SERVER_SECRET_KEY_FILE: the secret key file"
        f" {key_file} may be read by others (mode 0644): chmod 600 {key_file}\n"
    )


def test_short_key_file_is_a_config_error(tmp_path: Path) -> None:
    key_file = tmp_path / "hmac.key"
    key_file.write_text("short\n")
    key_file.chmod(0o600)
    code, _, err = run(
        "clients", "list", "--db", f"sqlite:///{tmp_path}/x.db",
        environ={"AUTHKESTRA_SERVER_SECRET_KEY_FILE": str(key_file)},
    )  # fmt: skip
    assert code == 3
    assert "16 bytes" in err


def _count_compares(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    calls: list[tuple[str, str]] = []
    real = hmac.compare_digest

    def counting(a: str, b: str) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counting)
    return calls


def test_matches_with_no_hashes_still_compares_once(monkeypatch: pytest.MonkeyPatch) -> None:
    hasher = SecretHasher(b"k" * 32)
    calls = _count_compares(monkeypatch)
    assert hasher.matches("anything", []) is False
    assert len(calls) == 1
    calls.clear()
    hashes = [hasher.hash("one"), hasher.hash("two"), hasher.hash("three")]
    assert hasher.matches("two", hashes) is True
    assert len(calls) == 3  # every hash, even after the match


def test_unknown_client_costs_a_hash_and_a_compare(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(f"sqlite:///{tmp_path}/authkestra.db")
    store.migrate()
    hasher = SecretHasher(b"k" * 32)
    store.create_client(
        "known", secret_hash=hasher.hash("right"), auth_method="client_secret_basic",
        scopes=(), audiences=(),
    )  # fmt: skip
    directory = ClientDirectory(store, hasher, cache_seconds=0)
    hashed: list[str] = []
    real_hash = hasher.hash
    monkeypatch.setattr(hasher, "hash", lambda s: hashed.append(s) or real_hash(s))
    calls = _count_compares(monkeypatch)
    for client_id in ("unknown", "known"):
        calls.clear()
        hashed.clear()
        with pytest.raises(InvalidClient):
            directory.authenticate(
                ClientCredentials(client_id, "wrong", AuthMethod.CLIENT_SECRET_BASIC)
            )
        assert len(calls) == 1, client_id
        assert hashed == ["wrong"]
    assert directory.authenticate(
        ClientCredentials("known", "right", AuthMethod.CLIENT_SECRET_BASIC)
    )
    store.close()


def test_secret_hasher_refuses_a_short_key_and_hides_it() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        SecretHasher(b"short")
    assert "k" * 32 not in repr(SecretHasher(b"k" * 32))
