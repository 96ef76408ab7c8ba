"""Dynamic client registration on a real ``authkestra serve --registration``: npm
oauth4webapi registers itself with an initial access token made by the CLI (from the
store, and through the admin API), then gets a token with what it was given."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from tests.interop.test_our_server_with_third_party_clients import peer_ok, run_peer
from tests.support.authkestra_server import AuthkestraServer, cli

API = "https://api.example.test/"


@pytest.fixture(scope="module")
def server() -> Iterator[AuthkestraServer]:
    started = AuthkestraServer(admin=True, extra_args=("--registration",))
    yield started
    started.stop()


def initial_token_from_the_store(server: AuthkestraServer, *args: str) -> str:
    made = cli(
        "registration-tokens", "create", *args, "--format", "json", "--db", server.db,
        env={"AUTHKESTRA_SERVER_ISSUER": server.issuer},
    )  # fmt: skip
    assert f"authkestra: store sqlite:///{server.db.removeprefix('sqlite:///')}" in made.stderr
    return str(json.loads(made.stdout)["initial_access_token"])


def test_oauth4webapi_registers_and_gets_a_token(server: AuthkestraServer) -> None:
    token = initial_token_from_the_store(server, "--scope", "read", "--audience", API)
    answer = peer_ok(
        "oauth4webapi_registration_check.mjs",
        issuer=server.issuer,
        initial_access_token=token,
        metadata={"client_name": "a tool", "grant_types": ["client_credentials"]},
    )
    client = answer["client"]
    assert client["client_id"].startswith("dyn-")
    assert client["has_secret"] and client["has_registration_token"]
    assert client["grant_types"] == ["client_credentials"]
    assert client["registration_client_uri"] == f"{server.issuer}/register/{client['client_id']}"
    assert answer["token"] == {"token_type": "bearer", "scope": "read"}


def test_oauth4webapi_without_a_valid_token_is_refused(server: AuthkestraServer) -> None:
    status, answer = run_peer(
        "oauth4webapi_registration_check.mjs",
        issuer=server.issuer,
        initial_access_token="not-a-token",
        metadata={"grant_types": ["client_credentials"]},
    )
    assert status == 1
    assert answer["error"]["stage"] == "registration"
    assert answer["error"]["status"] == 401


def test_an_initial_token_through_the_admin_api(server: AuthkestraServer) -> None:
    operator = server.create_client("operator", "--scope", "authkestra:admin")
    env = {
        "AUTHKESTRA_CLIENT_ID": operator[0],
        "AUTHKESTRA_CLIENT_SECRET": operator[1],
        "AUTHKESTRA_ISSUER": server.issuer,
    }
    assert server.admin_url is not None
    made = cli(
        "registration-tokens", "create", "--scope", "read", "--server", server.admin_url, env=env
    )
    token = made.stdout.strip()
    assert "/register until" in made.stderr
    registered = httpx.post(
        f"{server.issuer}/register",
        json={"scope": "read write"},  # more than it allows
        headers={"Authorization": f"Bearer {token}"},
    )
    assert registered.status_code == 400
    assert registered.json()["error"] == "invalid_client_metadata"
    registered = httpx.post(
        f"{server.issuer}/register", json={}, headers={"Authorization": f"Bearer {token}"}
    )
    assert registered.status_code == 201
    assert registered.json()["scope"] == "read"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--scope", "bad\\scope"), "scope: a space-separated string of scope tokens"),
        (("--audience", "has space"), "audience: a list of URIs"),
    ],
)
def test_a_bad_initial_token_request_is_one_line(
    server: AuthkestraServer, args: tuple[str, ...], message: str
) -> None:
    result = cli("registration-tokens", "create", *args, "--db", server.db, check=False)
    assert result.returncode == 2
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("authkestra: error:")]
    assert line == f"authkestra: error: {message}"
    assert "Traceback" not in result.stderr
