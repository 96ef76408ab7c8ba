"""Failed client authentications are throttled per source address (fixed windows).

More than ``max_failures_per_address`` failures from one address within
``failure_window`` seconds, and every request from that address gets 429 with
``Retry-After`` and ``temporarily_unavailable`` until the window ends -- even
with a right credential, so a source cannot tell a right guess. Never per client
id: a client's own requests from its own address are never refused because
someone else sent wrong credentials in its name. Most tests move the limiter's
clock by hand; one waits for a real 2-second window.
"""

from __future__ import annotations

import types

import httpx
import pytest

from authkestra.server import shared_state
from tests.server.conftest import MakeServer
from tests.server.harness import assert_oauth_error, poll

WINDOW = 60
# 15 s into a window: 45 s remain.
START = 1_000 * WINDOW + 15
ATTACKER, CLIENT_HOST = "192.0.2.10", "198.51.100.20"


@pytest.fixture
def wall(monkeypatch: pytest.MonkeyPatch) -> types.SimpleNamespace:
    """The limiter's clock, set by hand (``wall.now``)."""
    clock = types.SimpleNamespace(now=float(START))
    fake_time = types.SimpleNamespace(time=lambda: clock.now)
    monkeypatch.setattr(shared_state, "time", fake_time)
    return clock


def assert_throttled(response: httpx.Response, retry_after: int | None = None) -> None:
    body = assert_oauth_error(response, "temporarily_unavailable", 429)
    assert "retry after" in body["error_description"]
    assert response.headers["cache-control"] == "no-store"
    seconds = int(response.headers["retry-after"])
    assert seconds >= 1
    if retry_after is not None:
        assert seconds == retry_after


@pytest.mark.parametrize("limit", [1, 3, 5])
def test_an_address_is_throttled_after_more_than_the_limit(
    make_server: MakeServer, wall: types.SimpleNamespace, limit: int
) -> None:
    server = make_server(max_failures_per_address=limit, failure_window=WINDOW)
    client = server.add_client()
    for i in range(limit + 1):
        response = server.token((f"guess-{i}", "x"), address=ATTACKER)
        assert_oauth_error(response, "invalid_client", 401)
    assert_throttled(server.token(("guess-x", "x"), address=ATTACKER), retry_after=45)
    # A right credential from that address too: the source is not told whether it was right.
    assert_throttled(server.token(client, address=ATTACKER), retry_after=45)
    assert_throttled(server.form("/introspect", {"token": "x"}, basic=client, address=ATTACKER))


def test_wrong_secrets_in_a_clients_name_never_lock_it_out(
    make_server: MakeServer, wall: types.SimpleNamespace
) -> None:
    server = make_server(max_failures_per_address=3, failure_window=WINDOW)
    victim_id, secret = server.add_client()
    for _ in range(50):
        server.token((victim_id, "wrong"), address=ATTACKER)
    assert_throttled(server.token((victim_id, "wrong"), address=ATTACKER))
    # The client itself, from its own address, is not refused -- at no point.
    for _ in range(3):
        assert server.token((victim_id, secret), address=CLIENT_HOST).status_code == 200
    assert server.token((victim_id, secret), address="2001:db8::7").status_code == 200


def test_throttling_ends_with_the_window(
    make_server: MakeServer, wall: types.SimpleNamespace
) -> None:
    server = make_server(max_failures_per_address=3, failure_window=WINDOW)
    client_id, secret = server.add_client()
    for _ in range(4):
        server.token((client_id, "wrong"), address=ATTACKER)
    wall.now += 30
    assert_throttled(server.token((client_id, secret), address=ATTACKER), retry_after=15)
    wall.now += 14.5
    assert_throttled(server.token((client_id, secret), address=ATTACKER), retry_after=1)
    wall.now += 0.5  # the next window
    assert server.token((client_id, secret), address=ATTACKER).status_code == 200
    # A fresh count: one failure is answered as a failure, not throttled.
    assert_oauth_error(server.token((client_id, "wrong"), address=ATTACKER), "invalid_client", 401)
    assert server.token((client_id, secret), address=ATTACKER).status_code == 200


def test_throttled_attempts_do_not_prolong_the_block(
    make_server: MakeServer, wall: types.SimpleNamespace
) -> None:
    server = make_server(max_failures_per_address=2, failure_window=WINDOW)
    client_id, secret = server.add_client()
    for _ in range(3):
        server.token((client_id, "wrong"), address=ATTACKER)
    for _ in range(20):
        assert_throttled(server.token((client_id, "wrong"), address=ATTACKER))
    wall.now += 45
    assert server.token((client_id, secret), address=ATTACKER).status_code == 200


def test_failures_count_across_endpoints_and_methods(
    make_server: MakeServer, wall: types.SimpleNamespace
) -> None:
    server = make_server(max_failures_per_address=3, failure_window=WINDOW)
    client_id, secret = server.add_client(auth_method="client_secret_post")
    token = server.access_token(server.add_client())
    wrong = {"token": token, "client_id": client_id, "client_secret": "x"}
    server.token((client_id, "wrong"), post=True, address=ATTACKER)
    server.form("/introspect", wrong, address=ATTACKER)
    server.form("/revoke", wrong, address=ATTACKER)
    server.token((client_id, "wrong"), address=ATTACKER)  # Basic: the wrong method, a failure
    right = {
        "grant_type": "client_credentials",
        "token": token,
        "client_id": client_id,
        "client_secret": secret,
    }
    for path in ("/token", "/introspect", "/revoke"):
        assert_throttled(server.form(path, right, address=ATTACKER))
        assert server.form(path, right, address=CLIENT_HOST).status_code == 200


def test_a_request_without_credentials_counts(
    make_server: MakeServer, wall: types.SimpleNamespace
) -> None:
    server = make_server(max_failures_per_address=2, failure_window=WINDOW)
    for _ in range(3):
        response = server.form("/token", {"grant_type": "client_credentials"}, address=ATTACKER)
        assert_oauth_error(response, "invalid_client", 400)
    assert_throttled(server.form("/token", {"grant_type": "client_credentials"}, address=ATTACKER))


def test_successes_do_not_count(make_server: MakeServer, wall: types.SimpleNamespace) -> None:
    server = make_server(max_failures_per_address=1)
    client = server.add_client()
    for _ in range(10):
        assert server.token(client).status_code == 200


def test_request_errors_before_authentication_do_not_count(
    make_server: MakeServer, wall: types.SimpleNamespace
) -> None:
    """Malformed requests are refused as such; they are no guesses at a secret."""
    server = make_server(max_failures_per_address=1)
    client = server.add_client()
    for _ in range(5):
        response = server.post(
            "/token", content=b"grant_type=x", headers={"Content-Type": "text/plain"}
        )
        assert_oauth_error(response, "invalid_request", 400)
        bad_basic = server.post(
            "/token",
            content=b"grant_type=client_credentials",
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Authorization": "Basic ???",
            },
        )
        assert_oauth_error(bad_basic, "invalid_request", 400)
    assert server.token(client).status_code == 200


def test_a_real_window_passes(make_server: MakeServer) -> None:
    """With a 2-second window for real: throttled, then let in again (bounded wait)."""
    server = make_server(max_failures_per_address=3, failure_window=2)
    client_id, secret = server.add_client()

    def fail_until_throttled() -> httpx.Response | None:
        response = server.token((client_id, "wrong"))
        return response if response.status_code == 429 else None

    throttled = poll(fail_until_throttled, timeout=10, interval=0)
    assert_throttled(throttled)
    assert int(throttled.headers["retry-after"]) <= 2

    answers: list[int] = []

    def let_in() -> bool:
        response = server.token((client_id, secret))
        answers.append(response.status_code)
        if response.status_code == 429:
            assert_throttled(response)
        return response.status_code == 200

    poll(let_in, timeout=10, interval=0.1)
    assert set(answers[:-1]) <= {429}
    assert answers[-1] == 200
