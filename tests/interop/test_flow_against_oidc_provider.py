"""ClientCredentialsFlow against npm oidc-provider, a real third-party authorization server."""

from __future__ import annotations

import base64
import json

import anyio
import pytest

from authkestra import (
    ClientCredentialsFlow,
    InvalidClient,
    InvalidScope,
    InvalidTarget,
    Secret,
)
from tests.conftest import AWKWARD_SECRET
from tests.support.oidc_provider import OidcProvider

pytestmark = pytest.mark.interop


def test_basic_sync(oidc_provider: OidcProvider) -> None:
    flow = ClientCredentialsFlow("svc-basic", "basic-secret-0123456789", oidc_provider.token_url)
    token = flow.get_token_sync(["read", "write"])
    assert token.token_type == "Bearer"
    assert token.access_token
    assert token.scopes == ("read", "write")
    assert token.expires_in == 300
    assert token.expires_at is not None


def test_basic_async(oidc_provider: OidcProvider) -> None:
    flow = ClientCredentialsFlow("svc-basic", "basic-secret-0123456789", oidc_provider.token_url)
    token = anyio.run(flow.get_token, ["read"])
    assert token.scopes == ("read",)


def test_post(oidc_provider: OidcProvider) -> None:
    flow = ClientCredentialsFlow(
        "svc-post",
        Secret("post-secret-0123456789"),
        oidc_provider.token_url,
        auth_method="client_secret_post",
    )
    assert flow.get_token_sync("write").scopes == ("write",)


def test_awkward_id_and_secret_survive_form_encoding(oidc_provider: OidcProvider) -> None:
    flow = ClientCredentialsFlow("svc:awkward id", AWKWARD_SECRET, oidc_provider.token_url)
    assert flow.get_token_sync(["read"]).access_token


def test_no_scope_requested(oidc_provider: OidcProvider) -> None:
    flow = ClientCredentialsFlow("svc-basic", "basic-secret-0123456789", oidc_provider.token_url)
    token = flow.get_token_sync()
    assert token.access_token
    assert token.scope is None


def test_granted_scope_narrower_than_requested(oidc_provider: OidcProvider) -> None:
    # oidc-provider drops scopes it does not know; the response says what was granted.
    flow = ClientCredentialsFlow("svc-basic", "basic-secret-0123456789", oidc_provider.token_url)
    token = flow.get_token_sync(["read", "unheard-of"])
    assert token.scopes == ("read",)


def test_scope_the_client_may_not_have(oidc_provider: OidcProvider) -> None:
    flow = ClientCredentialsFlow(
        "svc-readonly", "readonly-secret-0123456789", oidc_provider.token_url
    )
    with pytest.raises(InvalidScope) as info:
        flow.get_token_sync(["read", "admin"])
    assert info.value.error == "invalid_scope"
    assert info.value.status_code == 400


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_wrong_secret_is_invalid_client(oidc_provider: OidcProvider, method: str) -> None:
    flow = ClientCredentialsFlow(
        "svc-basic", "not-the-secret-0123456789", oidc_provider.token_url, auth_method=method
    )
    with pytest.raises(InvalidClient) as info:
        flow.get_token_sync(["read"])
    assert info.value.status_code in (400, 401)
    assert "not-the-secret" not in str(info.value) and "not-the-secret" not in repr(info.value)


def test_rotated_secret_is_picked_up_from_a_callable(oidc_provider: OidcProvider) -> None:
    reads: list[str] = []
    values = iter(["an-old-secret-0123456789", "basic-secret-0123456789"])

    async def from_secrets_manager() -> str:
        reads.append("read")
        return next(values)

    flow = ClientCredentialsFlow("svc-basic", from_secrets_manager, oidc_provider.token_url)
    token = anyio.run(flow.get_token, ["read"])
    assert token.access_token
    assert len(reads) == 2


def test_resource_indicator_gives_a_jwt_for_that_audience(oidc_provider: OidcProvider) -> None:
    flow = ClientCredentialsFlow(
        "svc-basic",
        "basic-secret-0123456789",
        oidc_provider.token_url,
        resource="https://api.example.test/",
    )
    token = flow.get_token_sync(["read"])
    _header_b64, payload_b64, _ = token.access_token.split(".")
    payload = json.loads(base64.urlsafe_b64decode(payload_b64 + "=" * (-len(payload_b64) % 4)))
    assert payload["aud"] == "https://api.example.test/"
    assert payload["client_id"] == "svc-basic"
    assert token.scopes == ("read",)


def test_unknown_resource_is_invalid_target(oidc_provider: OidcProvider) -> None:
    flow = ClientCredentialsFlow(
        "svc-basic",
        "basic-secret-0123456789",
        oidc_provider.token_url,
        resource="https://elsewhere.example.test/",
    )
    with pytest.raises(InvalidTarget):
        flow.get_token_sync(["read"])


def test_discovery_from_issuer(oidc_provider: OidcProvider) -> None:
    flow = ClientCredentialsFlow(
        "svc-basic", "basic-secret-0123456789", issuer=oidc_provider.issuer
    )
    assert flow.token_url is None
    token = flow.get_token_sync(["read"])
    assert token.access_token
    assert flow.token_url == oidc_provider.token_url
    assert flow.metadata is not None and flow.metadata.issuer == oidc_provider.issuer


def test_discovery_rejects_issuer_mismatch(oidc_provider: OidcProvider) -> None:
    from authkestra import MalformedResponse

    # Same server, spelled with "localhost": the metadata names another issuer.
    issuer = oidc_provider.issuer.replace("127.0.0.1", "localhost")
    flow = ClientCredentialsFlow("svc-basic", "basic-secret-0123456789", issuer=issuer)
    with pytest.raises(MalformedResponse, match="not the configured"):
        flow.get_token_sync(["read"])
