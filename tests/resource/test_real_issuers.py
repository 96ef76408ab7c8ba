"""Tokens from real issuers: npm oidc-provider (a third party) and ``authkestra serve`` (ours).

oidc-provider issues RFC 9068 JWTs for each of its resources, signed ES256, EdDSA or
RS256, and opaque tokens when no resource is asked for; only the opaque ones can be
introspected there. Our server issues JWTs and introspects them.
"""

from __future__ import annotations

import anyio
import httpx
import pytest
from fastapi import Depends, FastAPI

from authkestra import ClientCredentialsFlow, InvalidClient, InvalidToken, OAuthError
from authkestra.resource import AccessToken, IntrospectionVerifier, JWTVerifier
from authkestra.resource.fastapi import require_scopes
from tests.resource.conftest import RESOURCES, OurDeployment
from tests.resource.support import AUDIENCE
from tests.support.clock import FakeClock
from tests.support.oidc_provider import OidcProvider

pytestmark = pytest.mark.interop

SVC = ("svc", "svc-secret-0123456789")
API = ("orders-api", "orders-api-secret-0123456789")


def third_party_token(provider: OidcProvider, resource: str | None, scope: str = "read") -> str:
    flow = ClientCredentialsFlow(*SVC, provider.token_url, resource=resource)
    return flow.get_token_sync(scope.split()).access_token


def our_token(deployment: OurDeployment, scope: str = "read") -> str:
    flow = ClientCredentialsFlow(
        deployment.client_id, deployment.secret, deployment.server.token_url, resource=AUDIENCE
    )
    return flow.get_token_sync(scope.split()).access_token


# -- oidc-provider ---------------------------------------------------------------------------


@pytest.mark.parametrize("alg", list(RESOURCES))
def test_third_party_jwt(third_party: OidcProvider, alg: str) -> None:
    resource = RESOURCES[alg]
    verifier = JWTVerifier(issuer=third_party.issuer, audience=resource)
    raw = third_party_token(third_party, resource, "read write")
    token = verifier.verify_sync(raw)
    assert token == anyio.run(verifier.verify, raw)
    assert token.client_id == token.subject == "svc"
    assert token.scopes == ("read", "write")
    assert token.audience == (resource,)
    assert token.issuer == third_party.issuer
    assert token.jwt_id
    assert verifier.jwks.jwks_url == f"{third_party.issuer}/jwks"  # discovered
    # The issuer's tokens for its other resources (other algorithms) are not for this API;
    # checking them needs no second fetch of the key set.
    for other in RESOURCES.values():
        if other != resource:
            with pytest.raises(InvalidToken, match="another audience"):
                verifier.verify_sync(third_party_token(third_party, other))
    assert verifier.jwks.fetches == 1


def test_third_party_algorithms_can_be_narrowed(third_party: OidcProvider) -> None:
    resource = RESOURCES["EdDSA"]
    raw = third_party_token(third_party, resource)
    assert JWTVerifier(issuer=third_party.issuer, audience=resource).verify_sync(raw)
    narrow = JWTVerifier(issuer=third_party.issuer, audience=resource, algorithms=["ES256"])
    with pytest.raises(InvalidToken, match="algorithm 'EdDSA'"):
        narrow.verify_sync(raw)


def test_third_party_token_refused_by_a_verifier_of_another_issuer(
    third_party: OidcProvider, our_server: OurDeployment
) -> None:
    raw = third_party_token(third_party, RESOURCES["ES256"])
    verifier = JWTVerifier(issuer=our_server.issuer, audience=RESOURCES["ES256"])
    with pytest.raises(InvalidToken, match="key set"):
        verifier.verify_sync(raw)


def test_third_party_opaque_token_by_introspection(third_party: OidcProvider) -> None:
    clock = FakeClock()
    opaque = third_party_token(third_party, None, "read write")
    assert opaque.count(".") == 0
    with pytest.raises(InvalidToken, match="three dot-separated parts"):
        JWTVerifier(issuer=third_party.issuer, audience=AUDIENCE).verify_sync(opaque)

    verifier = IntrospectionVerifier(
        issuer=third_party.issuer, client_id=API[0], client_secret=API[1], clock=clock
    )
    token = verifier.verify_sync(opaque)
    assert verifier.url == f"{third_party.issuer}/token/introspection"
    assert token.client_id == "svc"
    assert token.scopes == ("read", "write")
    assert token.issuer == third_party.issuer
    assert anyio.run(verifier.verify, opaque) is token  # cached

    # Revoked: accepted from the short cache, then refused.
    response = httpx.post(
        f"{third_party.issuer}/token/revocation",
        data={"token": opaque, "token_type_hint": "access_token"},
        auth=SVC,
    )
    assert response.status_code == 200
    assert verifier.verify_sync(opaque) is token
    clock.advance(verifier.cache_ttl)
    with pytest.raises(InvalidToken, match="not active"):
        verifier.verify_sync(opaque)


def test_third_party_introspection_of_unknown_tokens_and_jwts(third_party: OidcProvider) -> None:
    verifier = IntrospectionVerifier(
        f"{third_party.issuer}/token/introspection", client_id=API[0], client_secret=API[1]
    )
    with pytest.raises(InvalidToken, match="not active"):
        verifier.verify_sync("no-such-token")
    # oidc-provider will not introspect its JWTs: HTTP 400 unsupported_token_type. That
    # comes through as the provider's refusal (a 503 to the caller, through the framework
    # integrations), not as InvalidToken.
    with pytest.raises(OAuthError) as info:
        verifier.verify_sync(third_party_token(third_party, RESOURCES["ES256"]))
    assert info.value.error == "unsupported_token_type"
    assert info.value.status_code == 400


def test_third_party_introspection_with_a_wrong_secret_is_not_invalid_token(
    third_party: OidcProvider,
) -> None:
    verifier = IntrospectionVerifier(
        issuer=third_party.issuer, client_id=API[0], client_secret="wrong-secret-0123456789"
    )
    with pytest.raises(InvalidClient) as info:
        verifier.verify_sync(third_party_token(third_party, None))
    assert "wrong-secret" not in str(info.value)


# -- authkestra serve --------------------------------------------------------------------------


def test_our_jwt(our_server: OurDeployment) -> None:
    verifier = JWTVerifier(issuer=our_server.issuer, audience=AUDIENCE)
    raw = our_token(our_server, "read write")
    token = verifier.verify_sync(raw)
    assert token == anyio.run(verifier.verify, raw)
    assert token.client_id == token.subject == our_server.client_id
    assert token.scopes == ("read", "write")
    assert token.audience == (AUDIENCE,)
    assert token.issuer == our_server.issuer
    assert verifier.jwks.jwks_url == f"{our_server.issuer}/jwks.json"
    with pytest.raises(InvalidToken, match="another audience"):
        JWTVerifier(issuer=our_server.issuer, audience="https://other.test/").verify_sync(raw)


def test_our_introspection(our_server: OurDeployment) -> None:
    clock = FakeClock()
    verifier = IntrospectionVerifier(
        issuer=our_server.issuer,
        client_id=our_server.client_id,
        client_secret=our_server.secret,
        audience=AUDIENCE,
        clock=clock,
    )
    raw = our_token(our_server)
    token = verifier.verify_sync(raw)
    assert verifier.url == f"{our_server.issuer}/introspect"
    assert token.client_id == our_server.client_id
    assert token.scopes == ("read",)
    assert token.audience == (AUDIENCE,)
    assert anyio.run(verifier.verify, raw) is token

    with pytest.raises(InvalidToken, match="another audience"):
        IntrospectionVerifier(
            issuer=our_server.issuer,
            client_id=our_server.client_id,
            client_secret=our_server.secret,
            audience="https://other.test/",
        ).verify_sync(raw)
    with pytest.raises(InvalidToken, match="not active"):
        verifier.verify_sync(raw[:-4] + "AAAA")

    response = httpx.post(
        f"{our_server.issuer}/revoke",
        data={"token": raw},
        auth=(our_server.client_id, our_server.secret),
    )
    assert response.status_code == 200
    assert verifier.verify_sync(raw) is token  # the short positive cache
    clock.advance(verifier.cache_ttl)
    with pytest.raises(InvalidToken, match="not active"):
        verifier.verify_sync(raw)
    # A JWT verifier cannot know of the revocation: the token stays valid until exp.
    JWTVerifier(issuer=our_server.issuer, audience=AUDIENCE).verify_sync(raw)


def test_our_introspection_with_a_wrong_secret(our_server: OurDeployment) -> None:
    verifier = IntrospectionVerifier(
        f"{our_server.issuer}/introspect",
        client_id=our_server.client_id,
        client_secret="not-the-secret",
    )
    with pytest.raises(InvalidClient):
        verifier.verify_sync(our_token(our_server))


def test_fastapi_end_to_end_with_both_issuers(
    our_server: OurDeployment, third_party: OidcProvider
) -> None:
    ours = JWTVerifier(issuer=our_server.issuer, audience=AUDIENCE)
    theirs = JWTVerifier(issuer=third_party.issuer, audience=RESOURCES["RS256"])
    app = FastAPI()

    @app.get("/ours")
    async def from_ours(token: AccessToken = Depends(require_scopes("read", verifier=ours))) -> str:
        return token.client_id or ""

    @app.get("/theirs")
    async def from_theirs(
        token: AccessToken = Depends(require_scopes("write", verifier=theirs)),
    ) -> str:
        return token.client_id or ""

    our_raw = our_token(our_server, "read")
    their_raw = third_party_token(third_party, RESOURCES["RS256"], "read")

    async def call(path: str, token: str) -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
            return await client.get(path, headers={"Authorization": f"Bearer {token}"})

    response = anyio.run(call, "/ours", our_raw)
    assert response.status_code == 200 and response.json() == our_server.client_id
    response = anyio.run(call, "/theirs", their_raw)
    assert response.status_code == 403
    assert (
        response.headers["www-authenticate"] == 'Bearer error="insufficient_scope", scope="write"'
    )
    response = anyio.run(call, "/theirs", our_raw)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
