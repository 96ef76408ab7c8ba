"""Client assertions from the platform: a file re-read for every request, or a callable.

Against a real ``authkestra serve`` process: the client is registered with the public
key of a stand-in platform (``private_key_jwt``), and the "platform" writes short-lived
assertions signed with that key into a file, as a kubelet projects a service-account
token. The server refuses an assertion it has seen (by ``jti``), so a second token
obtained proves the flow read the file again.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey

from authkestra import (
    AssertionFile,
    ClientAssertionError,
    ClientCredentialsFlow,
    ConfigError,
    InvalidClient,
)
from authkestra.assertions import to_assertion_source
from authkestra.cli import Environment, main
from tests.support.authkestra_server import AuthkestraServer, cli

PLATFORM_KEY = ECKey.generate_key("P-256", {"kid": "platform-1"}, private=True)
STRANGER_KEY = ECKey.generate_key("P-256", {"kid": "platform-1"}, private=True)
CLIENT_ID = "reporter.payments"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthkestraServer]:
    served = AuthkestraServer()
    try:
        jwks = tmp_path_factory.mktemp("platform") / "platform.jwks.json"
        public = {**PLATFORM_KEY.as_dict(private=False), "kid": PLATFORM_KEY.kid}
        jwks.write_text(json.dumps({"keys": [public]}))
        cli(
            "clients", "create", CLIENT_ID, "--auth-method", "private_key_jwt",
            "--jwks", str(jwks), "--scope", "read", "--db", served.db,
        )  # fmt: skip
        yield served
    finally:
        served.stop()


def assertion(
    server: AuthkestraServer, *, lifetime: int = 240, key: Any = PLATFORM_KEY, **claims: Any
) -> str:
    """What the platform hands the workload: a JWT for the client, signed by the platform."""
    now = int(time.time())
    body = {
        "iss": CLIENT_ID, "sub": CLIENT_ID, "aud": server.issuer,
        "iat": now, "exp": now + lifetime, "jti": secrets.token_urlsafe(12), **claims,
    }  # fmt: skip
    return jwt.encode({"alg": "ES256", "kid": key.kid}, body, key)


def flow_for(server: AuthkestraServer, source: Any, **kwargs: Any) -> ClientCredentialsFlow:
    return ClientCredentialsFlow(
        CLIENT_ID, client_assertion=source, token_url=server.token_url, scopes="read", **kwargs
    )


class CountingTransport(httpx.HTTPTransport):
    """The network, counted: how many token requests were sent."""

    def __init__(self) -> None:
        super().__init__()
        self.sent = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.sent += 1
        return super().handle_request(request)


# -- a file the platform rewrites ----------------------------------------------------------


def test_the_file_is_read_again_for_every_token_request(
    server: AuthkestraServer, tmp_path: Path
) -> None:
    path = tmp_path / "token"
    path.write_text(assertion(server) + "\n")
    flow = flow_for(server, path)
    assert flow.auth_method.value == "private_key_jwt"  # implied by the assertion
    first = flow.get_token_sync()
    path.write_text(assertion(server))  # the kubelet's renewal
    second = flow.get_token_sync(force_refresh=True)
    assert first.access_token != second.access_token
    assert second.scope == "read"
    # The same assertion twice is a replay the server refuses: the file was read again.
    with pytest.raises(InvalidClient):
        flow.get_token_sync(force_refresh=True)


def test_a_string_path_and_an_assertion_file_both_name_the_file(
    server: AuthkestraServer, tmp_path: Path
) -> None:
    path = tmp_path / "token"
    path.write_text(assertion(server))
    assert flow_for(server, str(path)).get_token_sync().token_type.lower() == "bearer"
    path.write_text(assertion(server))
    assert asyncio.run(flow_for(server, AssertionFile(path)).get_token()).access_token


def test_an_expired_file_is_never_sent(server: AuthkestraServer, tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(assertion(server, lifetime=-30))
    transport = CountingTransport()
    with httpx.Client(transport=transport) as client:
        flow = flow_for(server, path, http_client=client)
        with pytest.raises(ClientAssertionError, match=r"expired 3\d s ago") as caught:
            flow.get_token_sync()
    assert transport.sent == 0
    assert "renewing" in str(caught.value)
    assert path.read_text() not in str(caught.value) and path.read_text() not in repr(flow)


def test_an_assertion_about_to_expire_is_read_again(server: AuthkestraServer) -> None:
    given = [assertion(server, lifetime=5), assertion(server)]  # the second: just renewed
    calls: list[str] = []

    def platform() -> str:
        calls.append(given[len(calls)])
        return calls[-1]

    token = flow_for(server, platform).get_token_sync()
    assert token.access_token and len(calls) == 2


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "cannot read the client assertion file"),
        ("", "is empty"),
        (b"\xff\xfe", "is not UTF-8"),
        ("not a jwt at all", "is not a JWT"),
        ("eyJhbGciOiJFUzI1NiJ9.bm90IGpzb24.c2ln", "is not a JWT"),
    ],
)
def test_a_file_that_gives_no_assertion_is_a_typed_error(
    server: AuthkestraServer, tmp_path: Path, content: str | bytes | None, problem: str
) -> None:
    path = tmp_path / "token"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(ClientAssertionError, match=problem) as caught:
        flow_for(server, path).get_token_sync()
    assert isinstance(caught.value, ConfigError)  # a ConfigError, for code that catches those
    if content == "not a jwt at all":
        assert content not in str(caught.value)


# -- a callable -----------------------------------------------------------------------------


def test_a_sync_callable_is_called_for_every_token_request(server: AuthkestraServer) -> None:
    calls: list[int] = []

    def platform() -> str:
        calls.append(1)
        return assertion(server)

    flow = flow_for(server, platform)
    flow.get_token_sync()
    flow.get_token_sync()  # cached: the platform is not asked
    asyncio.run(flow.get_token(force_refresh=True))  # in a worker thread, not the loop
    assert len(calls) == 2


def test_an_async_callable(server: AuthkestraServer) -> None:
    async def platform() -> str:
        await asyncio.sleep(0)
        return assertion(server)

    token = asyncio.run(flow_for(server, platform).get_token())
    assert token.scope == "read"


def test_a_callable_that_fails_is_a_typed_error_without_its_message(
    server: AuthkestraServer,
) -> None:
    def platform() -> str:
        raise RuntimeError("agent down; last token was eyJsecret")

    with pytest.raises(ClientAssertionError, match=r"source failed \(RuntimeError\)") as caught:
        flow_for(server, platform).get_token_sync()
    assert "eyJsecret" not in str(caught.value)


def test_an_assertion_the_server_refuses_is_read_again_once(server: AuthkestraServer) -> None:
    """A rejected assertion (here: signed by a key the server does not know) is replaced by
    the source's next one, once, as a rotated secret is."""
    given = [assertion(server, key=STRANGER_KEY), assertion(server)]
    calls: list[str] = []

    def platform() -> str:
        calls.append(given[len(calls)])
        return calls[-1]

    assert flow_for(server, platform).get_token_sync().access_token
    assert len(calls) == 2


# -- configuration --------------------------------------------------------------------------


def test_configuration_mistakes_are_named() -> None:
    url = "https://as.example.com/token"
    with pytest.raises(ConfigError, match="not both"):
        ClientCredentialsFlow("c", token_url=url, private_key=PLATFORM_KEY, client_assertion="/t")
    with pytest.raises(ConfigError, match="do not pass client_secret"):
        ClientCredentialsFlow("c", "s", url, client_assertion="/t")
    with pytest.raises(ConfigError, match="goes with auth_method='private_key_jwt'"):
        ClientCredentialsFlow("c", token_url=url, auth_method="none", client_assertion="/t")
    with pytest.raises(ConfigError, match="the assertion itself"):
        ClientCredentialsFlow("c", token_url=url, client_assertion="eyJhbGc.eyJzdWIi.c2lnbmF0")
    with pytest.raises(ConfigError, match="source of a client secret"):
        to_assertion_source(AssertionFile("/t").__class__.__mro__[1]("/t"))  # a FileSecret
    with pytest.raises(ConfigError, match="got int"):
        ClientCredentialsFlow("c", token_url=url, client_assertion=42)  # type: ignore[arg-type]
    flow = ClientCredentialsFlow("c", token_url=url, client_assertion="/var/run/token")
    assert "assertion=AssertionFile('/var/run/token')" in repr(flow)


def test_from_env_reads_the_assertion_file_variable(
    server: AuthkestraServer, tmp_path: Path
) -> None:
    path = tmp_path / "token"
    path.write_text(assertion(server))
    env = {
        "AUTHKESTRA_CLIENT_ID": CLIENT_ID,
        "AUTHKESTRA_CLIENT_ASSERTION_FILE": str(path),
        "AUTHKESTRA_TOKEN_URL": server.token_url,
        "AUTHKESTRA_SCOPES": "read",
    }
    assert ClientCredentialsFlow.from_env(env).get_token_sync().scope == "read"
    with pytest.raises(ConfigError, match="both set: keep one"):
        ClientCredentialsFlow.from_env({**env, "AUTHKESTRA_CLIENT_SECRET": "s3cret-value"})
    with pytest.raises(ClientAssertionError, match="cannot read the client assertion file"):
        ClientCredentialsFlow.from_env({**env, "AUTHKESTRA_CLIENT_ASSERTION_FILE": "/nope/t"})


def run_cli(args: list[str], environ: dict[str, str]) -> tuple[int, str, str]:
    import io

    out, err = io.StringIO(), io.StringIO()
    env = Environment(stdin=io.StringIO(), stdout=out, stderr=err, environ=environ)
    return main(args, env), out.getvalue(), err.getvalue()


def test_the_token_command_takes_an_assertion_file(
    server: AuthkestraServer, tmp_path: Path
) -> None:
    path = tmp_path / "token"
    path.write_text(assertion(server))
    environ = {"PATH": os.environ.get("PATH", ""), "AUTHKESTRA_CLIENT_ID": CLIENT_ID}
    code, out, err = run_cli(
        ["token", "--token-url", server.token_url, "--scope", "read",
         "--client-assertion-file", str(path), "--format", "json"],
        environ,
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["scope"] == "read"
    path.write_text(assertion(server, lifetime=-5))
    code, out, err = run_cli(
        ["token", "--token-url", server.token_url, "--client-assertion-file", str(path)], environ
    )
    assert code != 0 and out == ""
    assert err.startswith("authkestra: error:") and "expired" in err
    assert path.read_text() not in err
