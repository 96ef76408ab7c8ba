"""The header write used by flow.auth() (Authorization, DPoP): the same result as httpx's own."""

from __future__ import annotations

import httpx
import pytest

from authkestra import Token
from authkestra.flow import _header_write
from authkestra.flow._header_write import set_credentials


class QuietHeaders(httpx.Headers):
    """A subclass: the fast write must leave it to its own ``__setitem__``."""

    writes = 0

    def __setitem__(self, key: str, value: str) -> None:
        type(self).writes += 1
        super().__setitem__(key, value)


START_STATES: dict[str, list[tuple[str, str]]] = {
    "none": [("Host", "api.example"), ("Accept", "*/*")],
    "empty": [],
    "one, capitalised": [("Host", "h"), ("Authorization", "Bearer old"), ("X-A", "1")],
    "one, lower case": [("authorization", "Basic abc"), ("Host", "h")],
    "one, upper case": [("Host", "h"), ("AUTHORIZATION", "x")],
    "two": [("Authorization", "a"), ("Host", "h"), ("authorization", "b"), ("X", "y")],
    "three": [("Authorization", "a"), ("authorization", "b"), ("AUTHORIZATION", "c")],
    "a stale proof": [("Host", "h"), ("DPoP", "old-proof"), ("Authorization", "DPoP old")],
    "two stale proofs": [("dpop", "p1"), ("Host", "h"), ("DPoP", "p2")],
}


def _public(
    start: list[tuple[str, str]], token: Token, proof: str | None = None
) -> list[tuple[bytes, bytes]]:
    headers = httpx.Headers(start)
    headers["Authorization"] = token.authorization
    if proof is not None:
        headers["DPoP"] = proof
    elif "DPoP" in headers:
        del headers["DPoP"]
    return headers.raw


def test_the_fast_write_is_in_use_with_the_installed_httpx() -> None:
    # If an httpx upgrade changes its header internals, this fails (and every write
    # quietly takes the public path): a signal to look, never a wrong header.
    assert _header_write.FAST_PATH is True


@pytest.mark.parametrize("state", sorted(START_STATES))
@pytest.mark.parametrize("token_type", ["Bearer", "DPoP"])
def test_same_headers_as_httpx_setitem(state: str, token_type: str) -> None:
    token = Token("abc.DEF-123_~+/=", token_type=token_type)
    proof = "a.proof.jwt" if token_type == "DPoP" else None
    headers = httpx.Headers(START_STATES[state])
    set_credentials(headers, token, proof)
    assert headers.raw == _public(START_STATES[state], token, proof)
    assert headers.get_list("DPoP") == ([proof] if proof else [])
    assert headers.get_list("authorization") == [f"{token_type} abc.DEF-123_~+/="]
    # and again, as a retry with a fresh token does
    fresh = Token("fresh-token", token_type=token_type)
    set_credentials(headers, fresh)
    assert headers["Authorization"] == f"{token_type} fresh-token"
    assert len(headers.get_list("Authorization")) == 1


@pytest.mark.parametrize("state", sorted(START_STATES))
@pytest.mark.parametrize("proof", [None, "a.proof.jwt"])
def test_public_path_when_the_probe_fails(
    state: str, proof: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_header_write, "FAST_PATH", False)
    token = Token("tok", token_type="DPoP" if proof else "Bearer")
    headers = httpx.Headers(START_STATES[state])
    set_credentials(headers, token, proof)
    assert headers.raw == _public(START_STATES[state], token, proof)


def test_subclass_goes_through_its_own_setitem() -> None:
    QuietHeaders.writes = 0
    headers = QuietHeaders({"Host": "h"})
    set_credentials(headers, Token("tok"))
    assert QuietHeaders.writes == 1
    assert headers["authorization"] == "Bearer tok"


def test_non_ascii_token_goes_through_httpx() -> None:
    # Server responses are checked to be ASCII; a hand-made token may not be.
    token = Token("t\u00e9st")
    assert token.authorization_bytes is None
    headers = httpx.Headers({"Host": "h"})
    set_credentials(headers, token)
    assert headers.raw == _public([("Host", "h")], token)


def test_token_keeps_its_header_bytes() -> None:
    assert Token("abc", token_type="DPoP").authorization_bytes == b"DPoP abc"


def test_probe_refuses_unexpected_internals(monkeypatch: pytest.MonkeyPatch) -> None:
    class Other:
        def __init__(self, *_: object) -> None:
            self._list = {"not": "a list"}

    monkeypatch.setattr(_header_write.httpx, "Headers", Other)
    assert _header_write._probe() is False


def test_a_request_sent_through_a_client_carries_exactly_one_header() -> None:
    seen: list[list[tuple[bytes, bytes]]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.raw)
        return httpx.Response(200)

    class FixedAuth(httpx.Auth):
        def auth_flow(self, request: httpx.Request):  # type: ignore[no-untyped-def]
            set_credentials(request.headers, Token("tok-1"))
            yield request

    with httpx.Client(transport=httpx.MockTransport(answer), auth=FixedAuth()) as client:
        client.get("https://api.example/x", headers={"authorization": "Basic user-set"})
        client.get("https://api.example/y")
    for raw in seen:
        assert [v for k, v in raw if k.lower() == b"authorization"] == [b"Bearer tok-1"]
