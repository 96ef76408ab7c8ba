"""Token exchange (RFC 8693) with third-party peers, both ways.

- Our ``ClientCredentialsFlow.exchange()`` against npm oidc-provider, with a
  token-exchange grant registered through its ``registerGrantType`` (a fixture of
  this test: oidc-provider has no token exchange of its own).
- npm openid-client's ``genericGrantRequest`` against ``authkestra serve``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from authkestra import ClientCredentialsFlow, InvalidGrant, InvalidScope
from tests.interop.test_our_server_with_third_party_clients import peer_error, peer_ok
from tests.support.authkestra_server import AuthkestraServer
from tests.support.oidc_provider import OidcProvider, client

pytestmark = pytest.mark.interop

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
REPORTS_API = "https://reports.example.test/"


@pytest.fixture(scope="module")
def provider() -> Iterator[OidcProvider]:
    gateway = client("gateway", "gateway-secret-0123456789", scope="read write")
    gateway["grant_types"] = ["client_credentials", TOKEN_EXCHANGE]
    served = OidcProvider(
        {
            "clients": [client("caller", "caller-secret-0123456789", scope="read"), gateway],
            "scopes": ["read", "write"],
            "tokenExchange": True,
        }
    )
    yield served
    served.stop()


def test_our_flow_exchanges_at_oidc_provider(provider: OidcProvider) -> None:
    caller = ClientCredentialsFlow("caller", "caller-secret-0123456789", provider.token_url)
    subject = caller.get_token_sync(["read"]).access_token
    gateway = ClientCredentialsFlow("gateway", "gateway-secret-0123456789", provider.token_url)
    token = gateway.exchange_sync(subject, scopes=["read"], audience=REPORTS_API)
    assert token.scope == "read"
    assert token.access_token != subject
    assert gateway.exchange_sync(subject, scopes=["read"], audience=REPORTS_API) is token
    introspected = httpx.post(
        f"{provider.issuer}/token/introspection",
        data={"token": token.access_token},
        auth=("gateway", "gateway-secret-0123456789"),
        timeout=10,
    ).json()
    assert introspected["active"] is True
    assert introspected["client_id"] == "gateway"


def test_oidc_provider_refusals_reach_our_flow_typed(provider: OidcProvider) -> None:
    caller = ClientCredentialsFlow("caller", "caller-secret-0123456789", provider.token_url)
    subject = caller.get_token_sync(["read"]).access_token
    gateway = ClientCredentialsFlow("gateway", "gateway-secret-0123456789", provider.token_url)
    with pytest.raises(InvalidScope):
        gateway.exchange_sync(subject, scopes=["write"])  # wider than the subject's
    with pytest.raises(InvalidGrant) as caught:
        gateway.exchange_sync("not-a-token-of-the-provider")
    assert "not-a-token-of-the-provider" not in str(caught.value)


@pytest.fixture(scope="module")
def server() -> Iterator[AuthkestraServer]:
    served = AuthkestraServer()
    yield served
    served.stop()


def claims_of(token: str) -> dict[str, Any]:
    return dict(json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "==")))


def test_openid_client_exchanges_at_our_server(server: AuthkestraServer) -> None:
    caller_id, caller_secret = server.create_client("caller", "--scope", "read write")
    gateway_id, gateway_secret = server.create_client(
        "gateway", "--can-exchange", "--scope", "read", "--audience", REPORTS_API
    )
    subject = ClientCredentialsFlow(caller_id, caller_secret, server.token_url).get_token_sync()
    answer = peer_ok(
        "openid_client_token_exchange_check.mjs",
        issuer=server.issuer,
        client_id=gateway_id,
        client_secret=gateway_secret,
        subject_token=subject.access_token,
        audience=REPORTS_API,
    )
    assert TOKEN_EXCHANGE in answer["metadata"]["grant_types_supported"]
    token = answer["token"]
    assert token["issued_token_type"] == "urn:ietf:params:oauth:token-type:access_token"
    assert token["token_type"] == "bearer"  # openid-client lowercases it
    claims = claims_of(token["access_token"])
    assert claims["sub"] == "caller" and claims["client_id"] == "gateway"
    assert claims["act"] == {"sub": "gateway"} and claims["aud"] == REPORTS_API
    assert claims["scope"] == "read"
    refused = peer_error(
        "openid_client_token_exchange_check.mjs",
        issuer=server.issuer,
        client_id=gateway_id,
        client_secret=gateway_secret,
        subject_token=subject.access_token,
        scope="write",
    )
    assert refused["stage"] == "token_exchange" and refused["error"] == "invalid_scope"
