"""IntrospectionVerifier (RFC 7662) against an introspection endpoint we script."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, quote, unquote_plus

import anyio
import pytest

from authkestra import (
    AuthMethod,
    ConfigError,
    InvalidClient,
    InvalidRequest,
    InvalidToken,
    MalformedResponse,
    NetworkError,
    ProviderError,
    Secret,
)
from authkestra.resource import IntrospectionVerifier
from tests.support.clock import FakeClock
from tests.support.hostile_server import HostileServer, Received, Reply

CLIENT_ID = "orders api:1"
SECRET = "intro-secret:+%&= é"
AUDIENCE = "https://api.example.test/"


class Endpoint:
    """The introspection endpoint: answers ``answer`` (or ``reply``), counts requests."""

    def __init__(self, server: HostileServer, clock: FakeClock) -> None:
        self.server = server
        self.clock = clock
        self.url = f"{server.url}/introspect"
        self.answer: dict[str, Any] = self.active()
        self.reply: Reply | None = None
        self.metadata = False
        server.script = self._serve

    def active(self, **overrides: Any) -> dict[str, Any]:
        now = int(self.clock.now().timestamp())
        answer = {
            "active": True,
            "client_id": "billing-service",
            "sub": "billing-service",
            "scope": "read write",
            "aud": AUDIENCE,
            "iss": self.server.url,
            "exp": now + 300,
            "iat": now,
            "jti": "jti-1",
            "token_type": "Bearer",
        }
        answer.update(overrides)
        return answer

    def _serve(self, request: Received) -> Reply:
        if request.path == "/.well-known/oauth-authorization-server" and self.metadata:
            return Reply(
                200, json.dumps({"issuer": self.server.url, "introspection_endpoint": self.url})
            )
        if request.path != "/introspect":
            return Reply(404, "{}")
        return self.reply or Reply(200, json.dumps(self.answer))

    @property
    def requests(self) -> list[Received]:
        return [r for r in self.server.received if r.path == "/introspect"]


@pytest.fixture
def endpoint(hostile: HostileServer, clock: FakeClock) -> Iterator[Endpoint]:
    yield Endpoint(hostile, clock)


def make(endpoint: Endpoint, **options: Any) -> IntrospectionVerifier:
    settings: dict[str, Any] = {
        "client_id": CLIENT_ID,
        "client_secret": SECRET,
        "clock": endpoint.clock,
        "timeout": 2.0,
    }
    settings.update(options)
    url = settings.pop("url", endpoint.url)
    return IntrospectionVerifier(url, **settings)


def test_active_token(endpoint: Endpoint) -> None:
    verifier = make(endpoint, audience=AUDIENCE, issuer=endpoint.server.url)
    token = verifier.verify_sync("opaque-token-1")
    assert token.client_id == token.subject == "billing-service"
    assert token.scopes == ("read", "write")
    assert token.audience == (AUDIENCE,)
    assert token.issuer == endpoint.server.url
    assert token.jwt_id == "jti-1"
    assert int(token.expires_at.timestamp()) == endpoint.answer["exp"]
    assert token.claims["token_type"] == "Bearer"
    (request,) = endpoint.requests
    assert request.method == "POST"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert parse_qs(request.body.decode()) == {
        "token": ["opaque-token-1"],
        "token_type_hint": ["access_token"],
    }
    scheme, _, credentials = request.headers["authorization"].partition(" ")
    assert scheme == "Basic"
    user, _, password = base64.b64decode(credentials).decode().partition(":")
    # RFC 6749 §2.3.1: both form-encoded before Basic.
    assert (unquote_plus(user), unquote_plus(password)) == (CLIENT_ID, SECRET)


def test_client_secret_post(endpoint: Endpoint) -> None:
    anyio.run(make(endpoint, auth_method="client_secret_post").verify, "opaque-token-1")
    (request,) = endpoint.requests
    assert "authorization" not in request.headers
    form = parse_qs(request.body.decode())
    assert form["client_id"] == [CLIENT_ID]
    assert form["client_secret"] == [SECRET]


def test_a_secret_from_a_callable(endpoint: Endpoint) -> None:
    reads: list[int] = []

    def secret() -> str:
        reads.append(1)
        return SECRET

    verifier = make(endpoint, client_secret=secret, cache_ttl=0)
    verifier.verify_sync("t1")
    anyio.run(verifier.verify, "t2")
    assert len(reads) == 2


def test_active_answers_are_cached_for_cache_ttl(endpoint: Endpoint, clock: FakeClock) -> None:
    verifier = make(endpoint, cache_ttl=30)
    first = verifier.verify_sync("opaque-token-1")
    for _ in range(10):
        assert verifier.verify_sync("opaque-token-1") is first
        assert anyio.run(verifier.verify, "opaque-token-1") is first
    assert len(endpoint.requests) == 1
    # Revoked at the issuer: accepted until the cached answer is 30 s old, no longer.
    endpoint.answer = {"active": False}
    clock.advance(29)
    verifier.verify_sync("opaque-token-1")
    assert len(endpoint.requests) == 1
    clock.advance(1)
    with pytest.raises(InvalidToken, match="not active"):
        verifier.verify_sync("opaque-token-1")
    assert len(endpoint.requests) == 2


def test_the_cache_never_outlives_the_token(endpoint: Endpoint, clock: FakeClock) -> None:
    endpoint.answer = endpoint.active(exp=int(clock.now().timestamp()) + 10)
    verifier = make(endpoint, cache_ttl=60)
    verifier.verify_sync("t")
    clock.advance(9)
    verifier.verify_sync("t")
    assert len(endpoint.requests) == 1
    clock.advance(2)
    verifier.verify_sync("t")  # past exp, asked again: within the leeway, still accepted
    assert len(endpoint.requests) == 2
    clock.advance(30)
    with pytest.raises(InvalidToken, match="expired"):
        verifier.verify_sync("t")  # the endpoint still says active, with exp long past
    assert len(endpoint.requests) == 3


def test_exp_and_nbf_are_checked_within_the_leeway(endpoint: Endpoint, clock: FakeClock) -> None:
    now = int(clock.now().timestamp())
    verifier = make(endpoint, cache_ttl=0, negative_cache_ttl=0)
    for exp, nbf in ((now - 29, now), (now + 300, now + 29)):  # within 30 s of skew
        endpoint.answer = endpoint.active(exp=exp, nbf=nbf)
        assert verifier.verify_sync("opaque-token-1").client_id == "billing-service"
    endpoint.answer = endpoint.active(exp=now - 30)
    with pytest.raises(InvalidToken, match="expired"):
        verifier.verify_sync("opaque-token-1")
    endpoint.answer = endpoint.active(nbf=now + 31)
    with pytest.raises(InvalidToken, match="not valid yet"):
        verifier.verify_sync("opaque-token-1")
    for nbf in ("soon", None, True, [1]):
        endpoint.answer = {**endpoint.active(), "nbf": nbf}
        with pytest.raises(InvalidToken, match="malformed nbf"):
            verifier.verify_sync("opaque-token-1")
    strict = make(endpoint, cache_ttl=0, negative_cache_ttl=0, leeway=0)
    endpoint.answer = endpoint.active(exp=now)
    with pytest.raises(InvalidToken, match="expired"):
        strict.verify_sync("opaque-token-1")


def test_inactive_answers_are_cached_briefly(endpoint: Endpoint, clock: FakeClock) -> None:
    """A dead token replayed again and again costs one request per negative_cache_ttl."""
    endpoint.answer = {"active": False}
    verifier = make(endpoint)
    for _ in range(3):
        with pytest.raises(InvalidToken, match="not active"):
            verifier.verify_sync("t")
        with pytest.raises(InvalidToken, match="not active"):
            anyio.run(verifier.verify, "t")
    assert len(endpoint.requests) == 1
    clock.advance(5)
    endpoint.answer = endpoint.active()
    assert verifier.verify_sync("t").client_id == "billing-service"
    assert len(endpoint.requests) == 2


def test_cache_ttl_zero_turns_the_cache_off(endpoint: Endpoint) -> None:
    verifier = make(endpoint, cache_ttl=0, negative_cache_ttl=0)
    for _ in range(3):
        verifier.verify_sync("t")
    endpoint.answer = {"active": False}
    for _ in range(3):
        with pytest.raises(InvalidToken, match="not active"):
            verifier.verify_sync("t")
    assert len(endpoint.requests) == 6


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ({"active": False}, "not active"),
        ({}, "not active"),
        ({"active": "true"}, "not active"),
        ({"active": 1}, "not active"),
        ({"active": True, "exp": 1}, "expired"),
        ({"active": True, "exp": "soon"}, "malformed exp"),
        ({"active": True, "exp": True}, "malformed exp"),
        ({"active": True, "exp": 10**20}, "out of range"),
        ({"active": True, "exp": 253_402_300_800}, "out of range"),
        ({"active": True, "aud": "https://other.test/"}, "another audience"),
        ({"active": True, "aud": [1, 2]}, "another audience"),
        ({"active": True}, "another audience"),
        ({"active": True, "aud": AUDIENCE, "iss": "https://evil.test"}, "another issuer"),
    ],
)
def test_refused_answers(endpoint: Endpoint, answer: dict[str, Any], reason: str) -> None:
    endpoint.answer = answer
    verifier = make(endpoint, audience=AUDIENCE, issuer=endpoint.server.url)
    with pytest.raises(InvalidToken, match=reason):
        verifier.verify_sync("t")
    with pytest.raises(InvalidToken, match=reason):
        anyio.run(verifier.verify, "t")


def test_a_minimal_active_answer(endpoint: Endpoint, clock: FakeClock) -> None:
    endpoint.answer = {"active": True, "client_id": ["x"], "aud": [AUDIENCE, 3]}
    token = make(endpoint, cache_ttl=30).verify_sync("t")
    assert token.client_id is None and token.subject is None and token.scopes == ()
    assert token.audience == (AUDIENCE,)
    assert token.expires_at.timestamp() == pytest.approx(clock.now().timestamp() + 30)


def test_a_scope_array_is_read(endpoint: Endpoint) -> None:
    endpoint.answer = endpoint.active(scope=["read", "write"])
    assert make(endpoint).verify_sync("t").scopes == ("read", "write")


@pytest.mark.parametrize("scope", [7, ["read", 1], {"read": True}, True])
def test_a_malformed_scope_is_the_issuers_fault(endpoint: Endpoint, scope: Any) -> None:
    # Not "no scopes": the issuer sent something broken (a 503, not a 403).
    endpoint.answer = endpoint.active(scope=scope)
    verifier = make(endpoint)
    with pytest.raises(MalformedResponse, match="malformed scope"):
        verifier.verify_sync("t")
    with pytest.raises(MalformedResponse, match="malformed scope"):
        anyio.run(verifier.verify, "t")


@pytest.mark.parametrize(
    "token", ["", "a b", "a\nb", "tok\x00en", "é", "x" * 16_385, None, b"bytes"]
)
def test_tokens_that_cannot_be_bearer_tokens_are_refused_unasked(
    endpoint: Endpoint, token: Any
) -> None:
    with pytest.raises(InvalidToken):
        make(endpoint).verify_sync(token)
    assert endpoint.requests == []


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (Reply(401, '{"error": "invalid_client"}'), InvalidClient),
        (Reply(500, "oops"), ProviderError),
        (Reply(503, ""), ProviderError),
        (Reply(200, "not json"), MalformedResponse),
        (Reply(200, "[true]"), MalformedResponse),
        (Reply(200, '{"active": true, "active": false}'), MalformedResponse),
        (Reply(200, '{"active": NaN}'), MalformedResponse),
        (Reply(200, "x" * 70_000), MalformedResponse),
        (Reply(behaviour="close"), NetworkError),
    ],
)
def test_endpoint_failures_are_not_invalid_token(
    endpoint: Endpoint, reply: Reply, error: type[Exception]
) -> None:
    endpoint.reply = reply
    verifier = make(endpoint)
    with pytest.raises(error) as info:
        verifier.verify_sync("t")
    assert not isinstance(info.value, InvalidToken)
    assert SECRET not in str(info.value) and SECRET not in repr(info.value)
    with pytest.raises(error):
        anyio.run(verifier.verify, "t")


def test_the_endpoint_is_discovered_from_the_issuer(endpoint: Endpoint) -> None:
    endpoint.metadata = True
    verifier = IntrospectionVerifier(
        issuer=endpoint.server.url,
        client_id=CLIENT_ID,
        client_secret=SECRET,
        clock=endpoint.clock,
        cache_ttl=0,
    )
    verifier.verify_sync("t1")
    anyio.run(verifier.verify, "t2")
    assert verifier.url == endpoint.url
    paths = [r.path for r in endpoint.server.received]
    assert paths == ["/.well-known/oauth-authorization-server", "/introspect", "/introspect"]


@pytest.mark.parametrize(
    "options",
    [
        {"url": None},
        {"auth_method": "none"},
        {"client_secret": None},
        {"url": "http://introspect.example.test/introspect"},
        {"url": "https://user:pw@auth.example.test/introspect"},
        {"client_id": None},
        {"client_id": 5},
        {"client_id": ""},
        {"client_id": " "},
        {"client_id": "orders\napi"},
        {"client_secret": ""},
        {"client_secret": Secret("")},
    ],
)
def test_configuration_errors(endpoint: Endpoint, options: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        make(endpoint, **options)


@pytest.mark.parametrize(
    "method",
    [m for m in AuthMethod if m not in ("client_secret_basic", "client_secret_post")],
)
def test_auth_methods_it_cannot_send_are_refused(endpoint: Endpoint, method: AuthMethod) -> None:
    # Not accepted, then failing every request with an AssertionError.
    with pytest.raises(ConfigError, match="client_secret_basic' or 'client_secret_post"):
        make(endpoint, auth_method=method)
    with pytest.raises(ConfigError, match="client_secret_basic' or 'client_secret_post"):
        make(endpoint, auth_method=method.value)


def test_an_empty_secret_from_a_source_is_a_config_error(endpoint: Endpoint) -> None:
    verifier = make(endpoint, client_secret=lambda: "")
    with pytest.raises(ConfigError, match="empty client secret"):
        verifier.verify_sync("t")
    with pytest.raises(ConfigError, match="empty client secret"):
        anyio.run(verifier.verify, "t")
    assert endpoint.requests == []


# A token with characters that are encoded in a URL or a form (/, +, =).
TOKEN = "echoed/Tok+en=" + "x7" * 40
ESCAPED = TOKEN.replace("/", "\\/")  # as JSON may send it


@pytest.mark.parametrize(
    ("reply", "error", "status"),
    [
        (
            Reply(
                400, json.dumps({"error": "invalid_request", "error_description": f"bad {TOKEN}"})
            ),
            InvalidRequest,
            400,
        ),
        (  # JSON-escaped: only the decoded description holds the token
            Reply(
                400,
                '{"error": "invalid_request", "error_description": "' + ESCAPED + '"}',
            ),
            InvalidRequest,
            400,
        ),
        (  # the token straddles byte 400, where the excerpt is cut from the body
            Reply(
                500,
                "<html>" + " " * 340 + f"<p>bad token {TOKEN}</p></html>",
                content_type="text/html",
            ),
            ProviderError,
            500,
        ),
        (Reply(502, json.dumps({"message": f"upstream refused {TOKEN}"})), ProviderError, 502),
        (Reply(302, headers={"Location": f"https://evil.test/?token={TOKEN}"}), ProviderError, 302),
        (
            Reply(307, headers={"Location": f"https://evil.test/?token={quote(TOKEN, safe='')}"}),
            ProviderError,
            307,
        ),
        (Reply(200, f'{{"{TOKEN}": 1, "{TOKEN}": 2}}'), MalformedResponse, 200),
    ],
)
def test_errors_never_contain_the_token(
    endpoint: Endpoint, reply: Reply, error: type[ProviderError], status: int
) -> None:
    endpoint.reply = reply
    verifier = make(endpoint)
    for verify in (verifier.verify_sync, lambda t: anyio.run(verifier.verify, t)):
        with pytest.raises(error) as info:
            verify(TOKEN)
        exc = info.value
        assert exc.status_code == status
        shown = [str(exc), repr(exc), *map(str, exc.args), *map(str, vars(exc).values())]
        for text in shown:
            assert TOKEN not in text and quote(TOKEN, safe="") not in text
            assert TOKEN[:12] not in text  # not even cut short
        if error is not MalformedResponse:  # that one does not quote the body
            assert "***" in str(exc)


# -- one request per token at a time ---------------------------------------------------------


def held(endpoint: Endpoint) -> threading.Event:
    """Make the endpoint hold every request until the event is set; the event."""
    release = threading.Event()
    answer = json.dumps(endpoint.answer)

    def hold(request: Received) -> Reply:
        release.wait(10)
        return Reply(200, answer)

    endpoint.server.script = hold
    return release


def test_concurrent_checks_of_one_token_make_one_request(endpoint: Endpoint) -> None:
    """100 coroutines verifying one token while its introspection is in flight: one request."""
    release = held(endpoint)
    verifier = make(endpoint)
    outcomes: list[Any] = []

    async def main() -> None:
        async def check() -> None:
            outcomes.append(await verifier.verify("opaque-token-1"))

        async with anyio.create_task_group() as group:
            for _ in range(100):
                group.start_soon(check)
            slot = verifier._answers.slot("opaque-token-1")
            for _ in range(1000):  # until every follower waits on the leader's request
                flight = slot.flight
                if flight is not None and len(flight._wakers) == 99:
                    break
                await anyio.sleep(0.01)
            release.set()

    try:
        anyio.run(main)
    finally:
        release.set()
    assert len(endpoint.requests) == 1
    assert len(outcomes) == 100 and all(o is outcomes[0] for o in outcomes)


def test_threads_checking_one_token_share_its_request(endpoint: Endpoint) -> None:
    from concurrent.futures import ThreadPoolExecutor

    release = held(endpoint)
    verifier = make(endpoint)
    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(verifier.verify_sync, "opaque-token-2") for _ in range(8)]
        slot = verifier._answers.slot("opaque-token-2")
        for _ in range(1000):
            if slot.flight is not None and len(endpoint.server.received) == 1:
                break
            threading.Event().wait(0.01)
        release.set()
        results = [f.result(timeout=10) for f in futures]
    assert len(endpoint.requests) == 1
    assert {r.jwt_id for r in results} == {"jti-1"}


def test_remembered_tokens_are_bounded(endpoint: Endpoint) -> None:
    verifier = make(endpoint, max_cached_tokens=3)
    for n in range(10):
        verifier.verify_sync(f"token-{n}")
    assert len(verifier._answers) == 3
    verifier.verify_sync("token-9")  # the newest are kept
    assert len(endpoint.requests) == 10
    verifier.verify_sync("token-0")  # the oldest went first
    assert len(endpoint.requests) == 11


def test_failures_to_reach_the_endpoint_are_not_remembered(endpoint: Endpoint) -> None:
    endpoint.reply = Reply(503, "")
    verifier = make(endpoint)
    with pytest.raises(ProviderError):
        verifier.verify_sync("t")
    asked = len(endpoint.requests)  # a 503 is retried once
    endpoint.reply = None
    assert verifier.verify_sync("t").client_id == "billing-service"
    assert len(endpoint.requests) == asked + 1
