"""``authkestra clients|keys ... --server URL``: the same commands through the admin API,
as a client of the server (from the environment), with no database credentials."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from tests.support.authkestra_server import AuthkestraServer, cli
from tests.support.redis_server import free_port


@pytest.fixture(scope="module")
def server() -> Iterator[AuthkestraServer]:
    started = AuthkestraServer(admin=True)
    yield started
    started.stop()


@pytest.fixture(scope="module")
def operator(server: AuthkestraServer) -> dict[str, str]:
    """The environment of an operator: an admin client of the server, no store."""
    client_id, secret = server.create_client("operator", "--scope", "authkestra:admin")
    return {
        "AUTHKESTRA_CLIENT_ID": client_id,
        "AUTHKESTRA_CLIENT_SECRET": secret,
        "AUTHKESTRA_ISSUER": server.issuer,
        # No store here: a command that fell back to one would fail.
        "AUTHKESTRA_SERVER_DB": "sqlite:////nonexistent/authkestra.db",
    }


def remote(server: AuthkestraServer, env: dict[str, str], *args: str, check: bool = True):  # type: ignore[no-untyped-def]
    assert server.admin_url is not None
    return cli(*args, "--server", server.admin_url, env=env, check=check)


def token_works(server: AuthkestraServer, client_id: str, secret: str, **data: str) -> int:
    answer = httpx.post(
        server.token_url,
        data={"grant_type": "client_credentials", **data},
        auth=(client_id, secret),
    )
    return answer.status_code


def test_create_list_show_update_rotate_disable_delete(
    server: AuthkestraServer, operator: dict[str, str]
) -> None:
    made = remote(
        server, operator, "clients", "create", "remote-svc", "--scope", "read", "--scope",
        "write", "--audience", "https://api.example/", "--format", "json",
    )  # fmt: skip
    assert f"authkestra: admin API {server.admin_url} as operator" in made.stderr
    secret = json.loads(made.stdout)["client_secret"]
    assert token_works(server, "remote-svc", secret) == 200

    listed = json.loads(remote(server, operator, "clients", "list", "--format", "json").stdout)
    assert {"remote-svc", "operator"} <= {c["client_id"] for c in listed}
    shown = json.loads(
        remote(server, operator, "clients", "show", "remote-svc", "--format", "json").stdout
    )
    assert shown["scopes"] == ["read", "write"]
    assert shown["secrets"] == [{"expires_at": "never (the current one)"}]
    assert secret not in json.dumps(shown)

    updated = remote(
        server, operator, "clients", "update", "remote-svc", "--scope", "read", "--format", "json"
    )
    assert json.loads(updated.stdout)["scopes"] == ["read"]
    assert token_works(server, "remote-svc", secret, scope="write") == 400

    rotated = remote(
        server, operator, "clients", "rotate-secret", "remote-svc", "--grace", "0",
        "--format", "json",
    )  # fmt: skip
    new_secret = json.loads(rotated.stdout)["client_secret"]
    assert token_works(server, "remote-svc", new_secret) == 200

    assert remote(server, operator, "clients", "disable", "remote-svc").returncode == 0
    assert token_works(server, "remote-svc", new_secret) == 401
    assert remote(server, operator, "clients", "enable", "remote-svc").returncode == 0
    assert remote(server, operator, "clients", "delete", "remote-svc").returncode == 0
    gone = remote(server, operator, "clients", "show", "remote-svc", check=False)
    assert gone.returncode == 3
    assert gone.stderr.strip().endswith("authkestra: error: no client 'remote-svc'")


def test_registration_refusals_name_the_flags(
    server: AuthkestraServer, operator: dict[str, str]
) -> None:
    refused = remote(
        server, operator, "clients", "create", "pk", "--auth-method", "private_key_jwt",
        check=False,
    )  # fmt: skip
    assert refused.returncode == 2
    (line,) = [x for x in refused.stderr.splitlines() if x.startswith("authkestra: error:")]
    assert "jwks" in line and "Traceback" not in refused.stderr
    taken = remote(server, operator, "clients", "create", "operator", check=False)
    assert taken.returncode == 3
    assert "a client 'operator' already exists" in taken.stderr


def test_keys_through_the_admin_api(server: AuthkestraServer, operator: dict[str, str]) -> None:
    before = json.loads(remote(server, operator, "keys", "list", "--format", "json").stdout)
    rotated = remote(server, operator, "keys", "rotate", "--publish-ahead", "0")
    assert "new signing key" in rotated.stdout
    after = json.loads(remote(server, operator, "keys", "list", "--format", "json").stdout)
    assert len(after) == len(before) + 1
    old = next(k["kid"] for k in after if not k["signing"])
    withdrawn = remote(server, operator, "keys", "withdraw", old)
    assert f"key {old} withdrawn" in withdrawn.stdout
    missing = remote(server, operator, "keys", "withdraw", old, check=False)
    assert missing.returncode == 3 and "no published key" in missing.stderr


def test_a_client_without_the_admin_scope_is_told_so(
    server: AuthkestraServer, operator: dict[str, str]
) -> None:
    client_id, secret = server.create_client("not-an-operator", "--scope", "read")
    env = {**operator, "AUTHKESTRA_CLIENT_ID": client_id, "AUTHKESTRA_CLIENT_SECRET": secret}
    result = remote(server, env, "clients", "list", check=False)
    assert result.returncode == 6  # the scope was refused
    assert result.stderr.count("authkestra: error:") == 1
    assert secret not in result.stderr


def test_a_wrong_secret_and_an_unreachable_server_are_one_line(
    server: AuthkestraServer, operator: dict[str, str]
) -> None:
    wrong = remote(
        server, {**operator, "AUTHKESTRA_CLIENT_SECRET": "wrong-secret"}, "clients", "list",
        check=False,
    )  # fmt: skip
    assert wrong.returncode == 5
    assert "wrong-secret" not in wrong.stderr
    down = cli(
        "clients", "list", "--server", f"http://127.0.0.1:{free_port()}", env=operator, check=False
    )
    assert down.returncode == 4, down.stderr
    assert down.stderr.strip().splitlines()[-1].startswith("authkestra: error: --server")


def test_server_and_db_together_or_plain_http_off_loopback_are_refused(
    operator: dict[str, str],
) -> None:
    both = cli("clients", "list", "--server", "https://a.example", "--db", "sqlite:///x.db",
               env=operator, check=False)  # fmt: skip
    assert both.returncode == 2 and "--server and --db" in both.stderr
    plain = cli("clients", "list", "--server", "http://admin.example:9000", env=operator,
                check=False)  # fmt: skip
    assert plain.returncode == 3
    assert "--server" in plain.stderr and "Traceback" not in plain.stderr
