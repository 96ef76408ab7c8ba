"""Failed client authentications are throttled per client id and per address (fixed windows).

More than ``max_failures_per_client`` failures for one client id within
``failure_window`` seconds, or more than ``max_failures_per_address`` from one
address, and every request from them gets 429 -- even with the right secret --
until the window ends. Most tests move the limiter's clock by hand; one waits
for a real 2-second window.
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


@pytest.fixture
def wall(monkeypatch: pytest.MonkeyPatch) -> types.SimpleNamespace:
    """The limiter's clock, set by hand (``wall.now``)."""
    clock = types.SimpleNamespace(now=float(START))
    fake_time = types.SimpleNamespace(time=lambda: clock.now)
    monkeypatch.setattr(shared_state, "time", fake_time)
    return clock


def assert_throttled(response: httpx.Response, retry_after: int | None = None) -> None:
    assert_oauth_error(response, status=429)
    assert response.headers["cache-control"] == "no-store"
    seconds = int(response.headers["retry-after"])
    assert seconds >= 1
    if retry_after is not None:
        assert seconds == retry_after


@pytest.mark.parametrize("limit", [1, 3, 5])
def test_client_is_throttled_after_more_than_the_limit(
    make_server: MakeServer, wall: types.SimpleNamespace, limit: int
) -> None:
    server = make_server(
        max_failures_per_client=limit, max_failures_per_address=1000, failure_window=WINDOW
    )
    client_id, secret = server.add_client()
    for _ in range(limit + 1):
        assert_oauth_error(server.token((client_id, "wrong")), "invalid_client", 401)
    assert_throttled(server.token((client_id, "wrong")), retry_after=45)
    # The right secret too: the caller is not told whether it was right.
    assert_throttled(server.token((client_id, secret)), retry_after=45)


def test_throttling_ends_with_the_window(
    make_server: MakeServer, wall: types.SimpleNamespace
) -> None:
    server = make_server(max_failures_per_client=3, failure_window=WINDOW)
    client_id, secret = server.add_client()
    for _ in range(4):
        server.token((client_id, "wrong"))
    wall.now += 30
    assert_throttled(server.token((client_id, secret)), retry_after=15)
    wall.now += 14.5
    assert_throttled(server.token((client_id, secret)), retry_after=1)
    wall.now += 0.5  # the next window
    assert server.token((client_id, secret)).status_code == 200
    # A fresh count: one failure is answered as a failure, not throttled.
    assert_oauth_error(server.token((client_id, "wrong")), "invalid_client", 401)
    assert server.token((client_id, secret)).status_code == 200


def test_throttled_attempts_do_not_prolong_the_block(
    make_server: MakeServer, wall: types.SimpleNamespace
) -> None:
    server = make_server(max_failures_per_client=2, failure_window=WINDOW)
    client_id, secret = server.add_client()
    for _ in range(3):
        server.token((client_id, "wrong"))
    for _ in range(20):
        assert_throttled(server.token((client_id, "wrong")))
    wall.now += 45
    assert server.token((client_id, secret)).status_code == 200


def test_other_clients_are_not_throttled(
    make_server: MakeServer, wall: types.SimpleNamespace
) -> None:
    server = make_server(max_failures_per_client=3, failure_window=WINDOW)
    victim = server.add_client()
    bystander = server.add_client()
    for _ in range(4):
        server.token((victim[0], "wrong"))
    assert_throttled(server.token(victim))
    assert server.token(bystander).status_code == 200


def test_failures_count_across_endpoints_and_methods(
    make_server: MakeServer, wall: types.SimpleNamespace
) -> None:
    server = make_server(max_failures_per_client=3, failure_window=WINDOW)
    client_id, secret = server.add_client(auth_method="client_secret_post")
    token = server.access_token(server.add_client())
    server.token((client_id, "wrong"), post=True)
    server.form("/introspect", {"token": token, "client_id": client_id, "client_secret": "x"})
    server.form("/revoke", {"token": token, "client_id": client_id, "client_secret": "x"})
    server.token((client_id, "wrong"))  # Basic: the wrong method for it, and a failure too
    for path in ("/token", "/introspect", "/revoke"):
        response = server.form(
            path,
            {
                "grant_type": "client_credentials",
                "token": token,
                "client_id": client_id,
                "client_secret": secret,
            },
        )
        assert_throttled(response)


def test_unknown_client_ids_are_counted_too(
    make_server: MakeServer, wall: types.SimpleNamespace
) -> None:
    server = make_server(max_failures_per_client=3, max_failures_per_address=1000)
    for _ in range(4):
        assert_oauth_error(server.token(("ghost", "x")), "invalid_client", 401)
    assert_throttled(server.token(("ghost", "x")))


def test_address_is_throttled_after_more_than_its_limit(
    make_server: MakeServer, wall: types.SimpleNamespace
) -> None:
    server = make_server(
        max_failures_per_client=1000, max_failures_per_address=3, failure_window=WINDOW
    )
    client = server.add_client()
    attacker, neighbour = "192.0.2.10", "192.0.2.11"
    # Different client ids each time, and a request with no credentials at all.
    for i in range(3):
        response = server.token((f"guess-{i}", "x"), address=attacker)
        assert_oauth_error(response, "invalid_client", 401)
    response = server.form("/token", {"grant_type": "client_credentials"}, address=attacker)
    assert_oauth_error(response, "invalid_client", 400)
    # The address is blocked, whatever the client and however right its secret.
    assert_throttled(server.token(client, address=attacker), retry_after=45)
    assert_throttled(server.token(("guess-9", "x"), address=attacker))
    assert_throttled(server.form("/introspect", {"token": "x"}, basic=client, address=attacker))
    # Another address is not.
    assert server.token(client, address=neighbour).status_code == 200
    wall.now += 45
    assert server.token(client, address=attacker).status_code == 200


def test_successes_do_not_count(make_server: MakeServer, wall: types.SimpleNamespace) -> None:
    server = make_server(max_failures_per_client=1, max_failures_per_address=1)
    client = server.add_client()
    for _ in range(10):
        assert server.token(client).status_code == 200


def test_request_errors_before_authentication_do_not_count(
    make_server: MakeServer, wall: types.SimpleNamespace
) -> None:
    """Malformed requests are refused as such; they are no guesses at a secret."""
    server = make_server(max_failures_per_client=1, max_failures_per_address=1)
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
    server = make_server(max_failures_per_client=3, max_failures_per_address=1000, failure_window=2)
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
