"""flow.auth() for httpx (sync and async) and flow.requests_auth() for requests."""

from __future__ import annotations

from collections.abc import Iterator

import anyio
import httpx
import pytest
import requests

from authkestra import ClientCredentialsFlow, RetryPolicy
from tests.support.hostile_server import HostileServer, Received, Reply
from tests.support.token_server import TokenServer


class Api:
    """A protected API: rejects the tokens in ``revoked``, echoes the body otherwise."""

    def __init__(self) -> None:
        self.server = HostileServer()
        self.revoked: set[str] = set()
        self.server.script = self._answer

    def _answer(self, request: Received) -> Reply:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        if not token or token in self.revoked:
            return Reply(
                401,
                '{"error": "invalid_token"}',
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        return Reply(200, request.body or b"ok", content_type="text/plain")

    @property
    def tokens_seen(self) -> list[str]:
        return [r.headers.get("authorization", "") for r in self.server.received]


@pytest.fixture
def api() -> Iterator[Api]:
    server = Api()
    yield server
    server.server.stop()


def make_flow(token_server: TokenServer) -> ClientCredentialsFlow:
    return ClientCredentialsFlow(
        "svc", "secret-value-123", token_server.url, retry=RetryPolicy(max_attempts=1)
    )


def test_httpx_sync_sets_header_and_caches(token_server: TokenServer, api: Api) -> None:
    flow = make_flow(token_server)
    with httpx.Client(auth=flow.auth(["read"])) as client:
        for _ in range(5):
            assert client.get(f"{api.server.url}/x").status_code == 200
    assert api.tokens_seen == ["Bearer tok-1"] * 5
    assert token_server.requests == 1


def test_httpx_sync_retries_once_on_401_with_a_fresh_token(
    token_server: TokenServer, api: Api
) -> None:
    flow = make_flow(token_server)
    with httpx.Client(auth=flow.auth(["read"])) as client:
        assert client.get(f"{api.server.url}/x").status_code == 200
        api.revoked.add("tok-1")  # revoked at the issuer, the API now refuses it
        response = client.post(f"{api.server.url}/x", content=b"payload")
        assert response.status_code == 200 and response.content == b"payload"
    assert api.tokens_seen == ["Bearer tok-1", "Bearer tok-1", "Bearer tok-2"]
    assert token_server.requests == 2


def test_httpx_async(token_server: TokenServer, api: Api) -> None:
    flow = make_flow(token_server)

    async def main() -> list[int]:
        async with httpx.AsyncClient(auth=flow.auth(["read"])) as client:
            first = await client.get(f"{api.server.url}/x")
            api.revoked.add("tok-1")
            second = await client.post(f"{api.server.url}/x", json={"a": 1})
            return [first.status_code, second.status_code]

    assert anyio.run(main) == [200, 200]
    assert api.tokens_seen == ["Bearer tok-1", "Bearer tok-1", "Bearer tok-2"]


def test_httpx_retries_at_most_once(token_server: TokenServer, api: Api) -> None:
    flow = make_flow(token_server)
    api.revoked.update({"tok-1", "tok-2", "tok-3"})
    with httpx.Client(auth=flow.auth()) as client:
        assert client.get(f"{api.server.url}/x").status_code == 401
    assert len(api.tokens_seen) == 2


def test_httpx_streamed_body_is_not_replayed(token_server: TokenServer, api: Api) -> None:
    flow = make_flow(token_server)
    api.revoked.add("tok-1")

    def body() -> Iterator[bytes]:
        yield b"chunk"

    with httpx.Client(auth=flow.auth()) as client:
        assert client.post(f"{api.server.url}/x", content=body()).status_code == 401
    assert len(api.tokens_seen) == 1


def test_requests_auth(token_server: TokenServer, api: Api) -> None:
    flow = make_flow(token_server)
    with requests.Session() as session:
        session.auth = flow.requests_auth(["read"])
        assert session.get(f"{api.server.url}/x", timeout=10).status_code == 200
        api.revoked.add("tok-1")
        response = session.post(f"{api.server.url}/x", data=b"payload", timeout=10)
        assert response.status_code == 200 and response.content == b"payload"
        assert [r.status_code for r in response.history] == [401]
        api.revoked.add("tok-2")
        api.revoked.add("tok-3")
        assert session.get(f"{api.server.url}/x", timeout=10).status_code == 401
    assert api.tokens_seen == [
        "Bearer tok-1",
        "Bearer tok-1",
        "Bearer tok-2",
        "Bearer tok-2",
        "Bearer tok-3",
    ]


def test_auth_reprs_hide_tokens(token_server: TokenServer) -> None:
    flow = make_flow(token_server)
    flow.get_token_sync()
    assert "tok-1" not in repr(flow.auth()) and "tok-1" not in repr(flow.requests_auth())


@pytest.mark.parametrize("library", ["httpx", "requests"])
def test_a_stale_dpop_header_never_goes_with_a_bearer_token(
    token_server: TokenServer, api: Api, library: str
) -> None:
    """A DPoP header left on a request (reused, or set by hand) is dropped by both adapters:
    a proof next to a Bearer token would make the API refuse it (RFC 9449 §7.2)."""
    flow = make_flow(token_server)
    stale = {"DPoP": "left.over.proof"}
    if library == "httpx":
        with httpx.Client(auth=flow.auth(["read"])) as client:
            assert client.get(f"{api.server.url}/x", headers=stale).status_code == 200
    else:
        with requests.Session() as session:
            answer = session.get(f"{api.server.url}/x", headers=stale, auth=flow.requests_auth())
            assert answer.status_code == 200
    (received,) = api.server.received
    assert "dpop" not in received.headers
    assert received.headers["authorization"] == "Bearer tok-1"


def test_both_adapters_renew_through_the_same_token(token_server: TokenServer, api: Api) -> None:
    """A token refused by the API is dropped once for the flow: the other adapter sees the
    fresh one too, without a fetch of its own."""
    flow = make_flow(token_server)
    with httpx.Client(auth=flow.auth(["read"])) as client, requests.Session() as session:
        assert client.get(f"{api.server.url}/x").status_code == 200
        api.revoked.add("tok-1")
        assert client.get(f"{api.server.url}/x").status_code == 200  # renewed: tok-2
        answer = session.get(f"{api.server.url}/x", auth=flow.requests_auth(["read"]))
        assert answer.status_code == 200
    assert api.tokens_seen[-1] == "Bearer tok-2"
    assert token_server.requests == 2
