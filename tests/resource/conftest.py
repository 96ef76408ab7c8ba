"""Fixtures of the resource-server tests: an issuer we script, and two real issuers."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from authkestra.resource import JWTVerifier
from tests.resource.support import AUDIENCE, TestIssuer
from tests.support.authkestra_server import AuthkestraServer
from tests.support.clock import FakeClock
from tests.support.hostile_server import HostileServer
from tests.support.oidc_provider import OidcProvider, client, signing_jwks

MakeVerifier = Callable[..., JWTVerifier]

#: The third-party issuer's resources: one per signing algorithm.
RESOURCES = {
    "ES256": "https://es.api.test/",
    "EdDSA": "https://ed.api.test/",
    "RS256": "https://rs.api.test/",
}


@pytest.fixture
def issuer(hostile: HostileServer, clock: FakeClock) -> TestIssuer:
    """Our scripted issuer: its JWKS on the hostile server, its tokens signed in the test."""
    return TestIssuer(hostile, clock)


@pytest.fixture
def make_verifier(issuer: TestIssuer, clock: FakeClock) -> MakeVerifier:
    """``make_verifier(**options)``: a JWTVerifier for ``issuer`` on the fake clock."""

    def make(**options: Any) -> JWTVerifier:
        settings: dict[str, Any] = {
            "issuer": issuer.url,
            "audience": AUDIENCE,
            "jwks_url": issuer.jwks_url,
            "clock": clock,
            "timeout": 2.0,
        }
        settings.update(options)
        return JWTVerifier(**settings)

    return make


@pytest.fixture(scope="session")
def third_party() -> Iterator[OidcProvider]:
    """npm oidc-provider issuing RFC 9068 JWTs, one resource per signing algorithm.

    ``svc`` gets tokens; ``orders-api`` is the resource server, for introspection.
    """
    provider = OidcProvider(
        {
            "clients": [
                client("svc", "svc-secret-0123456789"),
                client("orders-api", "orders-api-secret-0123456789"),
            ],
            "scopes": ["read", "write"],
            "resources": {
                resource: {"scope": "read write", "format": "jwt", "alg": alg}
                for alg, resource in RESOURCES.items()
            },
            "ttl": 300,
            "jwks": signing_jwks(),
        }
    )
    yield provider
    provider.stop()


@dataclasses.dataclass(frozen=True)
class OurDeployment:
    server: AuthkestraServer
    client_id: str
    secret: str

    @property
    def issuer(self) -> str:
        return self.server.issuer


@pytest.fixture(scope="session")
def our_server() -> Iterator[OurDeployment]:
    """``authkestra serve`` (ES256) with one client allowed ``read write`` for AUDIENCE."""
    server = AuthkestraServer()
    try:
        client_id, secret = server.create_client(
            "billing-service", "--scope", "read", "--scope", "write", "--audience", AUDIENCE,
            "--can-introspect", "audience",
        )  # fmt: skip
        yield OurDeployment(server, client_id, secret)
    finally:
        server.stop()
