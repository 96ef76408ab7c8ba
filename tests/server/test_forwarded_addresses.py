"""Which address is the client's, on a real ``authkestra serve``: the connection's, unless
it comes through a proxy the operator listed (``--trusted-proxies``).

A rotating ``X-Forwarded-For`` from anyone else changes nothing: the per-address
failure limit cannot be dodged with it.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.server.test_real_server import basic_credentials, register
from tests.support.authkestra_server import AuthkestraServer

LIMIT = 3
LIMITS = {
    "AUTHKESTRA_SERVER_MAX_FAILURES_PER_ADDRESS": str(LIMIT),
    "AUTHKESTRA_SERVER_FAILURE_WINDOW": "86400",  # one window for the whole test
}


@pytest.fixture
def untrusting() -> Iterator[AuthkestraServer]:
    server = AuthkestraServer(extra_env=LIMITS)
    yield server
    server.stop()


@pytest.fixture
def behind_a_proxy() -> Iterator[AuthkestraServer]:
    server = AuthkestraServer(
        extra_env={**LIMITS, "AUTHKESTRA_SERVER_TRUSTED_PROXIES": "127.0.0.1, ::1"}
    )
    yield server
    server.stop()


def token(
    server: AuthkestraServer, client: tuple[str, str], forwarded_for: str | None = None
) -> httpx.Response:
    headers = {"Authorization": basic_credentials(*client)}
    if forwarded_for is not None:
        headers["X-Forwarded-For"] = forwarded_for
    return httpx.post(server.token_url, data={"grant_type": "client_credentials"}, headers=headers)


def test_a_rotating_forwarded_for_does_not_dodge_the_limit(untrusting: AuthkestraServer) -> None:
    client_id, secret = register(untrusting, "svc-forwarded")
    statuses = [
        token(untrusting, (client_id, "wrong"), forwarded_for=f"203.0.113.{i}").status_code
        for i in range(LIMIT + 3)
    ]
    assert statuses == [401] * (LIMIT + 1) + [429] * 2
    throttled = token(untrusting, (client_id, secret), forwarded_for="198.51.100.99")
    assert throttled.status_code == 429
    assert throttled.json()["error"] == "temporarily_unavailable"
    assert int(throttled.headers["Retry-After"]) >= 1


def test_a_listed_proxy_names_the_client(behind_a_proxy: AuthkestraServer) -> None:
    client_id, secret = register(behind_a_proxy, "svc-proxied")
    attacker, client_host = "203.0.113.66", "198.51.100.7"
    for _ in range(LIMIT + 1):
        assert token(behind_a_proxy, (client_id, "wrong"), attacker).status_code == 401
    assert token(behind_a_proxy, (client_id, secret), attacker).status_code == 429
    # The client, through the same proxy from its own address, is not refused.
    assert token(behind_a_proxy, (client_id, secret), client_host).status_code == 200
    # The proxy's chain: the address the last trusted hop saw is the client's.
    chained = f"{attacker}, {client_host}"
    assert token(behind_a_proxy, (client_id, secret), chained).status_code == 200
