"""``authkestra serve`` as a real process on loopback (uvicorn, SQLite): end to end.

Few tests, as each process costs seconds; the corpus runs in-process.
The server runs with small limits (3 failures per client in 2-second windows).
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import socket
from collections.abc import Iterator

import httpx
import pytest

from authkestra import ClientCredentialsFlow, RetryPolicy
from authkestra._protocol.client_auth import basic_credentials
from authkestra.cli import Environment, main
from authkestra.server import ServerSettings
from authkestra.server.context import hasher_for
from authkestra.server.store import Store, new_secret
from tests.server.harness import (
    assert_no_such_path,
    assert_oauth_error,
    jose_part,
    poll,
    verify_with_jwks,
)
from tests.support.authkestra_server import AuthkestraServer, cli

API = "https://api.example.test/"


@pytest.fixture(scope="module")
def real() -> Iterator[AuthkestraServer]:
    server = AuthkestraServer(
        extra_env={
            "AUTHKESTRA_SERVER_MAX_FAILURES_PER_ADDRESS": "1000",
        }
    )
    yield server
    log = server.log_path.read_text(errors="replace")
    server.stop()
    # Nothing reached the unhandled-exception handler.
    assert "Traceback" not in log, log[-3000:]
    assert "unhandled" not in log, log[-3000:]


def register(server: AuthkestraServer, client_id: str, **options: object) -> tuple[str, str]:
    """A client registered straight in the server's store (what the CLI does, faster)."""
    store = Store(server.db)
    secret = new_secret()
    try:
        store.create_client(
            client_id,
            secret_hash=hasher_for(ServerSettings(db=server.db), store).hash(secret),
            auth_method=str(options.get("auth_method", "client_secret_basic")),
            scopes=tuple(options.get("scopes", ("read", "write"))),  # type: ignore[arg-type]
            audiences=(API,),
            introspection="audience",  # it asks about its own tokens in these tests
        )
    finally:
        store.close()
    return client_id, secret


def token_request(server: AuthkestraServer, client: tuple[str, str]) -> httpx.Response:
    return httpx.post(
        server.token_url,
        data={"grant_type": "client_credentials"},
        headers={"Authorization": basic_credentials(*client)},
    )


def test_the_library_gets_a_token_that_verifies_introspects_and_revokes(
    real: AuthkestraServer,
) -> None:
    client = register(real, "svc.e2e~1")
    metadata = httpx.get(f"{real.issuer}/.well-known/oauth-authorization-server").json()
    assert metadata["issuer"] == real.issuer
    assert metadata["token_endpoint"] == real.token_url

    flow = ClientCredentialsFlow(
        *client, issuer=real.issuer, resource=API, retry=RetryPolicy(max_attempts=1)
    )
    token = flow.get_token_sync(["read"])
    assert token.token_type == "Bearer"
    assert token.scope == "read"
    assert token.expires_in == 3600

    jwks = httpx.get(metadata["jwks_uri"]).json()
    claims = verify_with_jwks(token.access_token, jwks)
    assert claims["iss"] == real.issuer
    assert claims["client_id"] == "svc.e2e~1"
    assert claims["aud"] == API
    assert jose_part(token.access_token, 0)["typ"] == "at+jwt"

    auth = httpx.BasicAuth(*client)  # plain Basic: these characters need no encoding
    introspected = httpx.post(
        metadata["introspection_endpoint"], data={"token": token.access_token}, auth=auth
    )
    assert introspected.status_code == 200
    assert introspected.json()["active"] is True
    assert introspected.json()["scope"] == "read"

    revoked = httpx.post(
        metadata["revocation_endpoint"], data={"token": token.access_token}, auth=auth
    )
    assert revoked.status_code == 200
    again = httpx.post(
        metadata["introspection_endpoint"], data={"token": token.access_token}, auth=auth
    )
    assert again.json() == {"active": False}


def test_the_console_script_registers_a_client_the_server_accepts(real: AuthkestraServer) -> None:
    result = cli(
        "clients", "create", "from-cli", "--scope", "read", "--format", "json",
        env={"AUTHKESTRA_SERVER_DB": real.db},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert set(document) == {"client_id", "client_secret"}
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", document["client_secret"])
    client = (document["client_id"], document["client_secret"])
    response = token_request(real, client)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    assert response.json()["scope"] == "read"


def test_errors_over_http_are_json(real: AuthkestraServer) -> None:
    client = register(real, "svc-errors")
    assert_oauth_error(httpx.get(real.token_url), "invalid_request", 405)
    assert_no_such_path(httpx.get(f"{real.issuer}/nowhere"))
    assert_no_such_path(httpx.post(f"{real.issuer}/token/"))
    assert_oauth_error(
        httpx.post(real.token_url, json={"grant_type": "client_credentials"}),
        "invalid_request",
        400,
    )
    big = httpx.post(
        real.token_url,
        content=b"grant_type=client_credentials&pad=" + b"a" * 20_000,
        headers={"Content-Type": "application/x-www-form-urlencoded",
                 "Authorization": basic_credentials(*client)},
    )  # fmt: skip
    assert_oauth_error(big, "invalid_request", 413)

    def chunks() -> Iterator[bytes]:
        yield b"grant_type=client_credentials&pad="
        for _ in range(10):
            yield b"a" * 4096

    chunked = httpx.post(
        real.token_url,
        content=chunks(),
        headers={"Content-Type": "application/x-www-form-urlencoded",
                 "Authorization": basic_credentials(*client)},
    )  # fmt: skip
    assert "content-length" not in chunked.request.headers
    assert_oauth_error(chunked, "invalid_request", 413)
    bad = httpx.post(
        real.token_url,
        content=b"grant_type=client_credentials&scope=%ff",
        headers={"Content-Type": "application/x-www-form-urlencoded",
                 "Authorization": basic_credentials(*client)},
    )  # fmt: skip
    assert_oauth_error(bad, "invalid_request", 400)


def _raw(real: AuthkestraServer, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", real.port), timeout=10) as sock:
        with contextlib.suppress(OSError):  # the server may close before reading it all
            sock.sendall(request)
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except OSError:
            pass
    return answer


def test_what_uvicorn_refuses_is_a_400_and_no_crash(real: AuthkestraServer) -> None:
    """Requests HTTP parsing refuses never reach the app: uvicorn's own plain 400."""
    head = f"POST /token HTTP/1.1\r\nHost: 127.0.0.1:{real.port}\r\n".encode()
    # httptools (uvicorn[standard]) has no limit on the head: the app's own answers 431.
    huge = _raw(real, head + b"X-Padding: " + b"a" * 200_000 + b"\r\nContent-Length: 0\r\n\r\n")
    assert re.match(rb"HTTP/1\.1 431 ", huge), huge[:200]
    assert b'"error":"invalid_request"' in huge and b"16384 bytes" in huge
    for request in (
        head + b"Content-Length: abc\r\n\r\n",
        head + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
        b"GARBAGE\r\n\r\n",
    ):
        answer = _raw(real, request)
        assert re.match(rb"HTTP/1\.1 400 ", answer), answer[:200]
        assert b"Traceback" not in answer
    # A large header within the limit reaches the app, which answers with JSON.
    padded = b"X-Padding: " + b"a" * 10_000 + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    answer = _raw(real, head + padded)
    assert re.match(rb"HTTP/1\.1 400 ", answer), answer[:200]
    assert b"application/json" in answer and b'"error":"invalid_request"' in answer
    assert httpx.get(f"{real.issuer}/healthz").json()["status"] == "ok"


def test_key_rotation_reaches_the_running_server(real: AuthkestraServer) -> None:
    client = register(real, "svc-rotation")
    old = token_request(real, client).json()["access_token"]
    old_kid = jose_part(old, 0)["kid"]
    out, err = io.StringIO(), io.StringIO()
    code = main(
        ["keys", "rotate", "--keep-old-for", "1", "--publish-ahead", "0", "--db", real.db],
        Environment(environ={}, stdout=out, stderr=err),
    )
    assert code == 0, err.getvalue()
    new_kid = out.getvalue().split()[3]

    def jwks_kids() -> list[str]:
        return [k["kid"] for k in httpx.get(f"{real.issuer}/jwks.json").json()["keys"]]

    # Within the server's cache_seconds (2 s by default): new tokens from the new key ...
    poll(lambda: jose_part(token_request(real, client).json()["access_token"], 0)["kid"] == new_kid)
    # ... and, 1 s later, the old key leaves the JWKS.
    poll(lambda: jwks_kids() == [new_kid])
    assert old_kid not in jwks_kids()
    introspected = httpx.post(
        f"{real.issuer}/introspect", data={"token": old}, auth=httpx.BasicAuth(*client)
    )
    assert introspected.json() == {"active": False}
    assert json.loads(httpx.get(f"{real.issuer}/healthz").text)["status"] == "ok"
