"""DPoP-bound tokens (RFC 9449) from npm oidc-provider, with and without required nonces."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest
from joserfc.jwk import OKPKey

from authkestra import ClientCredentialsFlow, MalformedResponse
from authkestra._protocol.actions import HttpResponse
from authkestra._protocol.redact import Redactor
from authkestra._protocol.responses import parse_token_response
from tests.support.oidc_provider import OidcProvider, client, signing_jwks

pytestmark = pytest.mark.interop

SECRET = "dpop-client-secret-0123456789abcdef"
API = "https://api.test/"


def _config(**dpop: object) -> dict[str, object]:
    config: dict[str, object] = {
        "clients": [client("dpop-client", SECRET)],
        "scopes": ["read", "write"],
        "resources": {API: {"scope": "read write", "format": "jwt", "alg": "ES256"}},
        "ttl": 300,
        "jwks": signing_jwks(),
    }
    if dpop:
        config["dpop"] = dpop
    return config


@pytest.fixture(scope="module")
def plain() -> Iterator[OidcProvider]:
    """oidc-provider's defaults: DPoP accepted, no nonces."""
    server = OidcProvider(_config())
    yield server
    server.stop()


@pytest.fixture(scope="module")
def nonces() -> Iterator[OidcProvider]:
    """Every DPoP proof must carry a nonce the server handed out."""
    secret = base64.b64encode(secrets.token_bytes(32)).decode()
    server = OidcProvider(_config(nonceSecret=secret, requireNonce=True))
    yield server
    server.stop()


def _claims(token: str) -> dict[str, object]:
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))  # type: ignore[no-any-return]


def _flow(server: OidcProvider, **kwargs: Any) -> ClientCredentialsFlow:
    return ClientCredentialsFlow("dpop-client", SECRET, server.token_url, resource=API, **kwargs)


def test_dpop_bound_token_with_a_generated_key(plain: OidcProvider) -> None:
    flow = _flow(plain, dpop=True)
    token = flow.get_token_sync(["read"])
    assert token.token_type == "DPoP"
    assert token.authorization.startswith("DPoP ")
    claims = _claims(token.access_token)
    assert claims["cnf"] == {"jkt": flow.dpop_thumbprint}
    assert claims["aud"] == API


def test_dpop_bound_token_with_an_ed25519_key(plain: OidcProvider) -> None:
    key = OKPKey.generate_key("Ed25519", private=True)
    flow = _flow(plain, dpop_key=key)
    token = flow.get_token_sync(["read"])
    assert token.token_type == "DPoP"
    assert _claims(token.access_token)["cnf"] == {"jkt": key.thumbprint()}


def test_without_dpop_the_token_is_bearer(plain: OidcProvider) -> None:
    token = _flow(plain).get_token_sync(["read"])
    assert token.token_type == "Bearer"
    assert "cnf" not in _claims(token.access_token)


def test_required_nonce_is_fetched_and_used(nonces: OidcProvider) -> None:
    flow = _flow(nonces, dpop=True)
    token = flow.get_token_sync(["read"])
    assert token.token_type == "DPoP"
    assert _claims(token.access_token)["cnf"] == {"jkt": flow.dpop_thumbprint}
    # The nonce is remembered: the next request carries it from the start.
    assert flow._dpop is not None and flow._dpop.nonces.get(nonces.token_url)
    again = flow.get_token_sync(["read"], force_refresh=True)
    assert again.token_type == "DPoP" and again.access_token != token.access_token


def test_required_nonce_async(nonces: OidcProvider) -> None:
    flow = _flow(nonces, dpop=True)
    token = asyncio.run(flow.get_token(["write"]))
    assert token.token_type == "DPoP"
    assert _claims(token.access_token)["cnf"] == {"jkt": flow.dpop_thumbprint}


def test_a_dpop_answer_to_a_bearer_request_is_refused() -> None:
    response = HttpResponse(
        200, {}, json.dumps({"access_token": "x", "token_type": "DPoP"}).encode()
    )
    with pytest.raises(MalformedResponse, match="DPoP"):
        parse_token_response(
            response,
            requested_scopes=(),
            received_at=datetime.now(timezone.utc),
            redact=Redactor(),
        )
