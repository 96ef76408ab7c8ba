"""RFC 8414 metadata (and its OpenID Connect twin), the JWKS, and the health check."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from authkestra.server import ServerSettings
from tests.server.conftest import MakeServer
from tests.server.harness import ISSUER, InProcessServer, jose_part

PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


@pytest.mark.parametrize(
    "path", ["/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"]
)
def test_metadata(server: InProcessServer, path: str) -> None:
    response = server.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    metadata = response.json()
    assert metadata["issuer"] == ISSUER
    assert metadata["token_endpoint"] == f"{ISSUER}/token"
    assert metadata["jwks_uri"] == f"{ISSUER}/jwks.json"
    assert metadata["introspection_endpoint"] == f"{ISSUER}/introspect"
    assert metadata["revocation_endpoint"] == f"{ISSUER}/revoke"
    assert metadata["grant_types_supported"] == [
        "client_credentials",
        "urn:ietf:params:oauth:grant-type:token-exchange",
    ]
    methods = ["client_secret_basic", "client_secret_post", "private_key_jwt", "client_secret_jwt"]
    assert metadata["token_endpoint_auth_methods_supported"] == methods
    assert metadata["introspection_endpoint_auth_methods_supported"] == methods
    assert metadata["revocation_endpoint_auth_methods_supported"] == methods
    assert metadata["access_token_signing_alg_values_supported"] == ["ES256"]


def test_both_metadata_documents_are_the_same(server: InProcessServer) -> None:
    oauth = server.get("/.well-known/oauth-authorization-server").json()
    oidc = server.get("/.well-known/openid-configuration").json()
    assert oauth == oidc


def test_metadata_endpoints_are_served_at_the_paths_they_name(server: InProcessServer) -> None:
    metadata = server.get("/.well-known/oauth-authorization-server").json()
    assert server.get(metadata["jwks_uri"].removeprefix(ISSUER)).status_code == 200
    for name in ("token_endpoint", "introspection_endpoint", "revocation_endpoint"):
        # POST-only endpoints: they exist (an empty POST is an OAuth error, not a 404).
        response = server.post(metadata[name].removeprefix(ISSUER))
        assert response.status_code in (400, 401), (name, response.status_code)


def test_an_issuer_with_a_trailing_slash_is_used_exactly_as_given(
    make_server: MakeServer,
) -> None:
    """RFC 8414 §3.3: the issuer a client finds must be identical to the one it knows."""
    server = make_server(issuer=ISSUER + "/")
    metadata = server.get("/.well-known/oauth-authorization-server").json()
    assert metadata["issuer"] == ISSUER + "/"
    assert metadata["token_endpoint"] == f"{ISSUER}/token"  # not //token
    assert metadata["jwks_uri"] == f"{ISSUER}/jwks.json"
    client = server.add_client()
    token = server.access_token(client)
    assert jose_part(token, 1)["iss"] == ISSUER + "/"
    assert server.introspect(token, client)["active"] is True


def test_issuer_with_a_path(make_server: MakeServer) -> None:
    server = make_server(issuer="https://login.example.test/tenant-1")
    metadata = server.get("/.well-known/oauth-authorization-server").json()
    assert metadata["issuer"] == "https://login.example.test/tenant-1"
    assert metadata["token_endpoint"] == "https://login.example.test/tenant-1/token"
    client = server.add_client()
    token = server.access_token(client)
    assert server.introspect(token, client)["iss"] == "https://login.example.test/tenant-1"


@pytest.mark.parametrize(
    ("host", "port", "issuer"),
    [
        ("127.0.0.1", 8080, "http://127.0.0.1:8080"),
        ("::1", 9000, "http://[::1]:9000"),
        ("localhost", 80, "http://localhost:80"),
    ],
)
def test_default_issuer_is_where_the_server_listens(host: str, port: int, issuer: str) -> None:
    settings = ServerSettings(host=host, port=port, issuer=None, db="sqlite://")
    assert settings.effective_issuer() == issuer


def test_the_default_issuer_is_refused_where_it_would_be_plain_http_off_loopback() -> None:
    with pytest.raises(ValidationError, match="give --issuer with the https URL clients use"):
        ServerSettings(host="0.0.0.0", issuer=None, db="sqlite://")
    with_tls = ServerSettings(host="auth.internal", port=443, db="sqlite://", tls_cert="c.pem")
    assert with_tls.effective_issuer() == "https://auth.internal:443"


@pytest.mark.parametrize(
    ("issuer", "problem"),
    [
        ("auth.example.com", "not an absolute https URL"),
        ("/token", "not an absolute https URL"),
        ("ftp://auth.example.com", "not an absolute https URL"),
        ("http://auth.example.com", "plain http on a host that is not loopback: use https"),
        ("https://auth.example.com?tenant=1", "has a query or fragment"),
        ("https://auth.example.com#x", "has a query or fragment"),
        ("https://user@auth.example.com", "has user information"),
        ("https://[::1", "is not a URL"),
    ],
)
def test_an_issuer_that_is_not_an_https_url_is_refused(issuer: str, problem: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(problem)):
        ServerSettings(issuer=issuer, db="sqlite://")


@pytest.mark.parametrize(
    "issuer", ["https://auth.example.com", "https://auth.example.com/", "http://127.0.0.1:9",
               "http://[::1]:8080/tenant", "http://localhost"],
)  # fmt: skip
def test_an_issuer_is_kept_exactly(issuer: str) -> None:
    assert ServerSettings(issuer=issuer, db="sqlite://").effective_issuer() == issuer


@pytest.mark.parametrize("alg", ["ES256", "EdDSA", "RS256"])
def test_jwks_holds_public_keys_only(make_server: MakeServer, alg: str) -> None:
    server = make_server(signing_alg=alg)
    response = server.get("/jwks.json")
    assert response.status_code == 200
    assert "max-age" in response.headers["cache-control"]
    keys = response.json()["keys"]
    assert len(keys) == 1
    (key,) = keys
    assert key["alg"] == alg
    assert key["use"] == "sig"
    assert isinstance(key["kid"], str) and key["kid"]
    assert not PRIVATE_MEMBERS & set(key), key
    # And the private key is nowhere in the document.
    private = server.ctx.keys.signing_key()[2].as_dict(private=True)
    secret_values = {str(private[m]) for m in PRIVATE_MEMBERS if m in private}
    assert secret_values
    assert not any(value in response.text for value in secret_values)


def test_head_and_get_only(server: InProcessServer) -> None:
    assert server.request("HEAD", "/healthz").status_code == 200
    for path in ("/healthz", "/jwks.json", "/.well-known/oauth-authorization-server"):
        response = server.post(path)
        assert response.status_code == 405
        assert response.json()["error"] == "invalid_request"
