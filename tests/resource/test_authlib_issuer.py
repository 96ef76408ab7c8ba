"""Tokens from Authlib as a third-party issuer: RFC 9068 JWTs made by its JWTBearerTokenGenerator.

Authlib's ``authlib.oauth2.rfc9068.JWTBearerTokenGenerator`` builds the claims and header
and signs with its key set (joserfc keys); the keys and the RFC 8414 metadata are
served by the scripted issuer on the hostile server, and the verifier discovers them.
The generator signs through ``joserfc.jwt.encode`` with joserfc's recommended
algorithms only, which no longer include EdDSA (RFC 9864): for EdDSA the test gives
that call ``algorithms=["EdDSA"]`` and silences joserfc's deprecation warning.
"""

from __future__ import annotations

import functools
import types
from datetime import datetime, timezone
from typing import Any

import anyio
import pytest
from authlib.oauth2.rfc9068 import JWTBearerTokenGenerator
from authlib.oauth2.rfc9068 import token as authlib_rfc9068
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, OKPKey, RSAKey

from authkestra import InvalidToken
from authkestra.resource import JWTVerifier
from tests.resource.support import TestIssuer
from tests.support.clock import FakeClock

API = "https://orders.api.test/"
LIFETIME = 300


@functools.cache
def key_set(name: str) -> KeySet:
    """An Authlib issuer's signing keys, by name; same kids under another name: an impostor."""
    return KeySet(
        [
            ECKey.generate_key("P-256", private=True, parameters={"kid": "es", "alg": "ES256"}),
            OKPKey.generate_key("Ed25519", private=True, parameters={"kid": "ed", "alg": "EdDSA"}),
            RSAKey.generate_key(2048, private=True, parameters={"kid": "rs", "alg": "RS256"}),
        ]
    )


class Client:
    """The two methods Authlib's generator asks of a client model."""

    def get_client_id(self) -> str:
        return "svc"

    def get_allowed_scope(self, scope: str) -> str:
        return scope


class User:
    def get_user_id(self) -> str:
        return "alice"


class Generator(JWTBearerTokenGenerator):  # type: ignore[misc]
    def __init__(self, issuer: str, alg: str, audience: str | None, keys: str) -> None:
        super().__init__(issuer, alg=alg, expires_generator=LIFETIME)
        self.audience, self.keys = audience, keys

    def get_jwks(self) -> KeySet:
        return key_set(self.keys)

    def get_audiences(self, client: Any, user: Any, scope: str) -> Any:
        # Authlib's default audience is the client's id; an API names itself instead.
        return self.audience or super().get_audiences(client, user, scope)


def authlib_token(
    issuer: str, alg: str = "ES256", *, audience: str | None = API, keys: str = "issuer"
) -> str:
    generator = Generator(issuer, alg, audience, keys)
    response = generator.generate("authorization_code", Client(), User(), scope="read write")
    return response["access_token"]  # type: ignore[no-any-return]


@pytest.fixture
def authlib_issuer(issuer: TestIssuer, monkeypatch: pytest.MonkeyPatch) -> TestIssuer:
    issuer.published = key_set("issuer").as_dict(private=False)["keys"]
    issuer.metadata = True
    # See the module docstring: let Authlib's generator sign EdDSA too.
    encode = functools.partial(jwt.encode, algorithms=["ES256", "EdDSA", "RS256"])
    monkeypatch.setattr(authlib_rfc9068, "jwt", types.SimpleNamespace(encode=encode))
    return issuer


def verifier_for(issuer: TestIssuer, clock: FakeClock, **options: Any) -> JWTVerifier:
    return JWTVerifier(issuer=issuer.url, audience=API, clock=clock, **options)


@pytest.mark.filterwarnings("ignore:EdDSA is deprecated")
@pytest.mark.parametrize("alg", ["ES256", "EdDSA", "RS256"])
def test_authlib_tokens_are_accepted(
    authlib_issuer: TestIssuer, clock: FakeClock, alg: str
) -> None:
    verifier = verifier_for(authlib_issuer, clock)
    raw = authlib_token(authlib_issuer.url, alg)
    header = jwt.decode(raw, key_set("issuer"), algorithms=[alg]).header
    assert header["typ"] == "at+jwt" and header["kid"] == alg[:2].lower()
    token = verifier.verify_sync(raw)
    assert token == anyio.run(verifier.verify, raw)
    assert token.client_id == "svc" and token.subject == "alice"
    assert token.scopes == ("read", "write")
    assert token.audience == (API,)
    assert token.issuer == authlib_issuer.url
    assert token.jwt_id == token.claims["jti"] and len(token.claims["jti"]) == 16
    issued = datetime.fromtimestamp(token.claims["iat"], timezone.utc)
    assert (token.expires_at - issued).total_seconds() == LIFETIME
    assert verifier.jwks.jwks_url == authlib_issuer.jwks_url  # discovered (RFC 8414)
    assert authlib_issuer.requests_to("/.well-known/oauth-authorization-server") == 1


def test_authlib_default_audience_and_another_resource_are_refused(
    authlib_issuer: TestIssuer, clock: FakeClock
) -> None:
    verifier = verifier_for(authlib_issuer, clock)
    for audience in (None, "https://billing.api.test/"):  # None: Authlib's default, "svc"
        with pytest.raises(InvalidToken, match="another audience"):
            verifier.verify_sync(authlib_token(authlib_issuer.url, audience=audience))


def test_authlib_token_of_another_issuer_is_refused(
    authlib_issuer: TestIssuer, clock: FakeClock
) -> None:
    verifier = verifier_for(authlib_issuer, clock)
    with pytest.raises(InvalidToken, match="another issuer"):
        verifier.verify_sync(authlib_token(authlib_issuer.url + "/tenant-b"))
    # Same claims and kids, keys of an impostor running Authlib too.
    with pytest.raises(InvalidToken, match="signature is not valid"):
        verifier.verify_sync(authlib_token(authlib_issuer.url, "RS256", keys="impostor"))


def test_authlib_token_expires(authlib_issuer: TestIssuer, clock: FakeClock) -> None:
    verifier = verifier_for(authlib_issuer, clock)
    raw = authlib_token(authlib_issuer.url)
    assert verifier.verify_sync(raw).client_id == "svc"
    clock.advance(LIFETIME + verifier.leeway - 5)  # past exp, within the leeway
    assert verifier.verify_sync(raw).client_id == "svc"
    clock.advance(10)
    with pytest.raises(InvalidToken, match="expired"):
        verifier.verify_sync(raw)
