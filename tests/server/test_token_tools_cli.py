"""``authkestra introspect``, ``revoke`` and ``decode``: the token from stdin or a file,
never from the command line; the server's answers, or one line."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.authkestra_server import BIN, AuthkestraServer

API = "https://api.example.test/"


@pytest.fixture(scope="module")
def server() -> Iterator[AuthkestraServer]:
    started = AuthkestraServer()
    yield started
    started.stop()


@pytest.fixture(scope="module")
def env(server: AuthkestraServer) -> dict[str, str]:
    """An API's client, which may introspect the tokens meant for it, in the environment."""
    client_id, secret = server.create_client(
        "orders-api", "--scope", "read", "--audience", API, "--can-introspect", "audience"
    )
    return {
        "AUTHKESTRA_CLIENT_ID": client_id,
        "AUTHKESTRA_CLIENT_SECRET": secret,
        "AUTHKESTRA_ISSUER": server.issuer,
    }


def token_of(server: AuthkestraServer, env: dict[str, str]) -> str:
    answer = httpx.post(
        server.token_url,
        data={"grant_type": "client_credentials", "resource": API},
        auth=(env["AUTHKESTRA_CLIENT_ID"], env["AUTHKESTRA_CLIENT_SECRET"]),
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


def run(
    *args: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN), *args], input=stdin, capture_output=True, text=True,
        env={**os.environ, **(env or {})}, timeout=60, check=False,
    )  # fmt: skip


def test_introspect_then_revoke_then_introspect(
    server: AuthkestraServer, env: dict[str, str]
) -> None:
    token = token_of(server, env)
    active = run("introspect", stdin=token + "\n", env=env)
    assert active.returncode == 0, active.stderr
    document = json.loads(active.stdout)
    assert document["active"] is True and document["client_id"] == "orders-api"
    revoked = run("revoke", stdin=token, env=env)
    assert revoked.returncode == 0, revoked.stderr
    inactive = run("introspect", stdin=token, env=env)
    assert inactive.returncode == 1
    assert json.loads(inactive.stdout) == {"active": False}


def test_decode_from_a_file(server: AuthkestraServer, env: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(token_of(server, env))
    decoded = run("decode", "--token-file", str(path))
    assert decoded.returncode == 0, decoded.stderr
    document = json.loads(decoded.stdout)
    assert document["header"]["typ"] == "at+jwt"
    assert document["claims"]["aud"] == API
    assert document["verified"] is False
    assert document["times"]["exp"].endswith("+00:00")


@pytest.mark.parametrize("command", ["introspect", "revoke", "decode"])
def test_a_token_on_the_command_line_is_refused_without_echoing_it(
    server: AuthkestraServer, env: dict[str, str], command: str
) -> None:
    token = token_of(server, env)
    result = run(command, token, env=env)
    assert result.returncode == 2
    assert "never taken from the command line" in result.stderr
    assert token not in result.stderr + result.stdout


@pytest.mark.parametrize(
    ("stdin", "message"),
    [("", "no token read"), ("not a jwt", "no token read"), ("a.b", "not a JWT"),
     ("x" * 20000, "longer than")],
)  # fmt: skip
def test_decode_refuses_what_is_not_a_token(stdin: str, message: str) -> None:
    result = run("decode", stdin=stdin)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_introspection_without_the_right_or_credentials_is_one_line(
    server: AuthkestraServer, env: dict[str, str]
) -> None:
    token = token_of(server, env)
    wrong = run("introspect", stdin=token, env={**env, "AUTHKESTRA_CLIENT_SECRET": "nope-nope"})
    assert wrong.returncode == 5
    assert wrong.stderr.count("authkestra: error:") == 1 and "nope-nope" not in wrong.stderr
    missing = run("introspect", stdin=token, env={**env, "AUTHKESTRA_ISSUER": ""})
    assert missing.returncode == 3 and "AUTHKESTRA_" in missing.stderr
