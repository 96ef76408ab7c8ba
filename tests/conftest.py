"""Fixtures shared by the whole suite: real peers on loopback, and the hostile server."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from tests.support.clock import FakeClock
from tests.support.hostile_server import HostileServer
from tests.support.oidc_provider import OidcProvider, client, signing_jwks
from tests.support.redis_server import RedisServer
from tests.support.token_server import TokenServer

#: Secrets with every character RFC 6749 §2.3.1 encoding must survive (oidc-provider
#: takes printable ASCII only; non-ASCII is covered against our own servers).
AWKWARD_SECRET = "s3:cr+e%t w/&=?#" + secrets.token_urlsafe(8)


@pytest.fixture(scope="session")
def oidc_provider() -> Iterator[OidcProvider]:
    """npm oidc-provider with a Basic client, a post client and an awkward-secret client."""
    provider = OidcProvider(
        {
            "clients": [
                client("svc-basic", "basic-secret-0123456789"),
                client("svc-post", "post-secret-0123456789", method="client_secret_post"),
                client("svc:awkward id", AWKWARD_SECRET),
                client("svc-readonly", "readonly-secret-0123456789", scope="read"),
            ],
            "scopes": ["read", "write", "admin"],
            "resources": {
                "https://api.example.test/": {"scope": "read write", "format": "jwt"},
            },
            "ttl": 300,
            "jwks": signing_jwks(),
        }
    )
    yield provider
    provider.stop()


@pytest.fixture
def hostile() -> Iterator[HostileServer]:
    server = HostileServer()
    yield server
    server.stop()


@pytest.fixture
def token_server() -> Iterator[TokenServer]:
    server = TokenServer()
    yield server
    server.stop()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A real redis-server on loopback, for the whole session."""
    server = RedisServer()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    redis_server.flush()
    return redis_server.url
