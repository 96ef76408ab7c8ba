"""private_key_jwt and client_secret_jwt (RFC 7523) from ClientCredentialsFlow to npm oidc-provider."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from joserfc.jwk import ECKey, OKPKey, RSAKey

from authkestra import ClientCredentialsFlow, ConfigError, InvalidClient, RetryPolicy
from tests.support.oidc_provider import OidcProvider, signing_jwks

pytestmark = pytest.mark.interop

HS_SECRET = "client-secret-jwt-0123456789-abcdefghijklmnop"
KEYS = {
    "ES256": ECKey.generate_key("P-256", {"kid": "es-1"}, private=True),
    "EdDSA": OKPKey.generate_key("Ed25519", {"kid": "ed-1"}, private=True),
    "RS256": RSAKey.generate_key(2048, {"kid": "rs-1"}, private=True),
}
#: PEM armour around junk: must be refused as unreadable (built here, not a real key).
GARBAGE_PEM = "\n".join(
    ["-----BEGIN " + "PRIVATE KEY-----", "garbage", "-----END " + "PRIVATE KEY-----", ""]
)
OTHER = ECKey.generate_key("P-256", {"kid": "es-1"}, private=True)  # same kid, unregistered key


def _client(client_id: str, **metadata: object) -> dict[str, object]:
    return {
        "client_id": client_id,
        "grant_types": ["client_credentials"],
        "response_types": [],
        "redirect_uris": [],
        "scope": "read write",
        **metadata,
    }


@pytest.fixture(scope="module")
def provider() -> Iterator[OidcProvider]:
    clients = [
        _client(
            f"pkjwt-{alg.lower()}",
            token_endpoint_auth_method="private_key_jwt",
            token_endpoint_auth_signing_alg=alg,
            jwks={"keys": [key.as_dict(private=False) | {"kid": key.kid}]},
        )
        for alg, key in KEYS.items()
    ]
    clients.append(
        _client("hsjwt", token_endpoint_auth_method="client_secret_jwt", client_secret=HS_SECRET)
    )
    server = OidcProvider(
        {"clients": clients, "scopes": ["read", "write"], "ttl": 300, "jwks": signing_jwks()}
    )
    yield server
    server.stop()


def _claims(token: str) -> dict[str, object]:
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))  # type: ignore[no-any-return]


@pytest.mark.parametrize("alg", list(KEYS))
def test_private_key_jwt(provider: OidcProvider, alg: str) -> None:
    flow = ClientCredentialsFlow(
        f"pkjwt-{alg.lower()}",
        token_url=provider.token_url,
        auth_method="private_key_jwt",
        private_key=KEYS[alg],
    )
    first = flow.get_token_sync(["read"])
    second = flow.get_token_sync(["read"], force_refresh=True)  # a new assertion: a new jti
    assert first.access_token and second.access_token != first.access_token
    assert first.scopes == ("read",)


def test_private_key_jwt_from_pem_file_with_issuer_audience(
    provider: OidcProvider, tmp_path: Path
) -> None:
    from cryptography.hazmat.primitives import serialization

    pem = KEYS["ES256"].private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path = tmp_path / "client.pem"
    path.write_bytes(pem)
    flow = ClientCredentialsFlow(
        "pkjwt-es256",
        issuer=provider.issuer,
        auth_method="private_key_jwt",
        private_key=path,
        key_id="es-1",
    )
    assert flow.get_token_sync().access_token
    flow2 = ClientCredentialsFlow(
        "pkjwt-es256",
        issuer=provider.issuer,
        auth_method="private_key_jwt",
        private_key=str(path),
        key_id="es-1",
        assertion_audience="token_endpoint",
    )
    assert flow2.get_token_sync().access_token


def test_private_key_jwt_with_the_wrong_key_is_invalid_client(provider: OidcProvider) -> None:
    flow = ClientCredentialsFlow(
        "pkjwt-es256",
        token_url=provider.token_url,
        auth_method="private_key_jwt",
        private_key=OTHER,
        retry=RetryPolicy(max_attempts=1),
    )
    with pytest.raises(InvalidClient):
        flow.get_token_sync()


def test_client_secret_jwt(provider: OidcProvider) -> None:
    flow = ClientCredentialsFlow(
        "hsjwt", HS_SECRET, provider.token_url, auth_method="client_secret_jwt"
    )
    token = flow.get_token_sync(["write"])
    assert token.scopes == ("write",)
    wrong = ClientCredentialsFlow(
        "hsjwt",
        HS_SECRET + "x",
        provider.token_url,
        auth_method="client_secret_jwt",
        retry=RetryPolicy(max_attempts=1),
    )
    with pytest.raises(InvalidClient) as info:
        wrong.get_token_sync()
    assert HS_SECRET not in str(info.value)


def test_retries_send_a_fresh_assertion(hostile: object) -> None:
    from authkestra._protocol.client_assertion import JWT_BEARER
    from tests.support.hostile_server import HostileServer, Reply

    assert isinstance(hostile, HostileServer)
    hostile.reply_with(
        Reply(503, "busy"),
        Reply(503, "busy"),
        Reply(200, '{"access_token": "t", "token_type": "Bearer"}'),
    )
    flow = ClientCredentialsFlow(
        "svc",
        token_url=f"{hostile.url}/token",
        auth_method="private_key_jwt",
        private_key=KEYS["EdDSA"],
        retry=RetryPolicy(max_attempts=3, base_backoff=0.01),
    )
    flow.get_token_sync()
    from urllib.parse import parse_qs

    bodies = [parse_qs(r.body.decode()) for r in hostile.received]
    assert all(
        b["client_assertion_type"] == [JWT_BEARER] and b["client_id"] == ["svc"] for b in bodies
    )
    assert all("client_secret" not in b for b in bodies) and all(
        "authorization" not in r.headers for r in hostile.received
    )
    claims = [_claims(b["client_assertion"][0]) for b in bodies]
    assert len({c["jti"] for c in claims}) == 3
    for c in claims:
        assert c["iss"] == c["sub"] == "svc" and c["aud"] == f"{hostile.url}/token"
        assert 0 < int(c["exp"]) - int(c["iat"]) <= 60  # type: ignore[call-overload]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"auth_method": "private_key_jwt"}, "private_key"),
        ({"private_key": KEYS["ES256"]}, "private_key"),
        (
            {"auth_method": "private_key_jwt", "private_key": KEYS["ES256"].as_dict(private=False)},
            "public key",
        ),
        (
            {
                "auth_method": "private_key_jwt",
                "private_key": KEYS["ES256"],
                "signing_alg": "RS256",
            },
            "does not fit",
        ),
        ({"auth_method": "private_key_jwt", "private_key": "/nonexistent/key.pem"}, "cannot read"),
        (
            {
                "auth_method": "private_key_jwt",
                "private_key": GARBAGE_PEM,
            },
            "PEM",
        ),
    ],
)
def test_key_configuration_errors(kwargs: dict[str, object], message: str) -> None:
    secret = None if kwargs.get("auth_method") == "private_key_jwt" else "s-123456"
    with pytest.raises(ConfigError, match=message):
        ClientCredentialsFlow("svc", secret, "https://as.example/token", **kwargs)  # type: ignore[arg-type]
