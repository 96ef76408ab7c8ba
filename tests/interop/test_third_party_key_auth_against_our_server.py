"""Keys instead of secrets (RFC 7523), from real clients to ``authkestra serve``.

npm openid-client 6 (``client.PrivateKeyJwt`` and ``client.ClientSecretJwt``: grant,
introspection, revocation, and a replay of its captured token request), Python Authlib
(``authlib.oauth2.rfc7523.PrivateKeyJWT`` with the httpx ``OAuth2Client``), and our own
ClientCredentialsFlow (``private_key_jwt`` and ``client_secret_jwt``, and a replay of an
assertion it sent) -- against a real server process whose clients were registered with
``authkestra clients create NAME --auth-method private_key_jwt --jwks FILE`` (or
``--jwks-uri URL``, or ``--auth-method client_secret_jwt``).
"""

from __future__ import annotations

import dataclasses
import http.server
import json
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from authlib.integrations.base_client import OAuthError as AuthlibOAuthError
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from joserfc.jwk import ECKey, OKPKey, RSAKey

from authkestra import ClientCredentialsFlow, InvalidClient
from authkestra._protocol.client_assertion import JWT_BEARER
from tests.interop.test_our_server_with_third_party_clients import (
    jwt_header_and_claims,
    peer_error,
    peer_ok,
)
from tests.support.authkestra_server import AuthkestraServer, cli

with warnings.catch_warnings(record=True):
    # Authlib announces, on import, that it would rather use the httpx2 package than httpx.
    from authlib.integrations.httpx_client import OAuth2Client

pytestmark = pytest.mark.interop

API = "https://api.example.test/"
SCRIPT = "openid_client_key_auth_check.mjs"

#: name -> (private key, the alg it signs with). Generated once: RSA keys take a while.
KEYS: dict[str, tuple[Any, str]] = {
    "ES256": (ECKey.generate_key("P-256", {"kid": "ec-key-1"}, private=True), "ES256"),
    "Ed25519": (OKPKey.generate_key("Ed25519", {"kid": "ed-key-1"}, private=True), "Ed25519"),
    "RS256": (RSAKey.generate_key(2048, {"kid": "rsa-key-1"}, private=True), "RS256"),
}
PS256_KEY = RSAKey.generate_key(2048, {"kid": "rsa-pss-1"}, private=True)
#: Same kid as the registered EC key, but not the client's key.
IMPOSTOR = ECKey.generate_key("P-256", {"kid": "ec-key-1"}, private=True)
URI_KEY = ECKey.generate_key("P-256", {"kid": "uri-key-1"}, private=True)


def private_jwk(key: Any) -> dict[str, Any]:
    return {**key.as_dict(private=True), "kid": key.kid}


def public_jwks(*keys: Any) -> str:
    return json.dumps({"keys": [{**k.as_dict(private=False), "kid": k.kid} for k in keys]})


@dataclasses.dataclass(frozen=True)
class Deployment:
    server: AuthkestraServer
    #: client kind -> client id
    clients: dict[str, str]
    hs_secret: str
    jwks_host: KeyHost

    @property
    def issuer(self) -> str:
        return self.server.issuer


class KeyHost:
    """An HTTP server on loopback serving a client's JWK Set (its jwks_uri)."""

    def __init__(self, body: str) -> None:
        host = self
        self.body = body.encode()
        self.hits = 0

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                host.hits += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/jwk-set+json")
                self.send_header("Content-Length", str(len(host.body)))
                self.end_headers()
                self.wfile.write(host.body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/client/jwks.json"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


#: The CLI checks a --jwks-uri as the server would fetch it: under the same test setting.
INSECURE_JWKS_URI = {"AUTHKESTRA_SERVER_ALLOW_INSECURE_JWKS_URI": "true"}


def create(server: AuthkestraServer, name: str, *args: str) -> dict[str, Any]:
    """``authkestra clients create NAME ARGS --format json`` on the server's store."""
    out = cli(
        "clients", "create", name, *args, "--can-introspect", "any", "--format", "json",
        "--db", server.db,
        env=INSECURE_JWKS_URI,
    )  # fmt: skip
    document: dict[str, Any] = json.loads(out.stdout)
    return document


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    # The jwks_uri client's keys are served from loopback over http: the test setting
    # allows that (in production a jwks_uri is https to a public address).
    server = AuthkestraServer(extra_env=INSECURE_JWKS_URI)
    host = KeyHost(public_jwks(URI_KEY))
    try:
        directory = tmp_path_factory.mktemp("client-keys")
        clients: dict[str, str] = {}
        for name, (key, _alg) in KEYS.items():
            path = directory / f"{name}.jwks.json"
            path.write_text(public_jwks(key))
            client_id = f"pk-{name.lower()}.svc"
            document = create(
                server,
                client_id,
                "--auth-method",
                "private_key_jwt",
                "--jwks",
                str(path),
                "--scope",
                "read write",
                "--audience",
                API,
            )
            assert document == {
                "client_id": client_id,
                "auth_method": "private_key_jwt",
                "jwks_kids": [key.kid],
            }
            clients[name] = client_id
        pss_path = directory / "pss.jwks.json"
        # An RSA key the client's JWK restricts to PS256.
        pss_jwk = {**PS256_KEY.as_dict(private=False), "kid": PS256_KEY.kid, "alg": "PS256"}
        pss_path.write_text(json.dumps({"keys": [pss_jwk]}))
        create(
            server, "pk-ps256.svc", "--auth-method", "private_key_jwt", "--jwks", str(pss_path),
            "--scope", "read",
        )  # fmt: skip
        clients["PS256"] = "pk-ps256.svc"
        create(server, "pk-uri.svc", "--auth-method", "private_key_jwt", "--jwks-uri", host.url)
        clients["uri"] = "pk-uri.svc"
        hs = create(server, "hs.svc", "--auth-method", "client_secret_jwt", "--scope", "read")
        clients["hs"] = "hs.svc"
        yield Deployment(server, clients, hs["client_secret"], host)
    finally:
        server.stop()
        host.stop()


def key_inputs(deployment: Deployment, name: str) -> dict[str, Any]:
    key, alg = (PS256_KEY, "PS256") if name == "PS256" else KEYS[name]
    return {
        "issuer": deployment.issuer,
        "client_id": deployment.clients[name],
        "auth_method": "private_key_jwt",
        "private_jwk": private_jwk(key),
        "alg": alg,
    }


# -- npm openid-client -----------------------------------------------------------------------


@pytest.mark.parametrize("name", [*KEYS, "PS256"])
def test_openid_client_private_key_jwt_grant_introspect_revoke(
    deployment: Deployment, name: str
) -> None:
    answer = peer_ok(SCRIPT, **key_inputs(deployment, name), scope="read", revoke=True)
    metadata = answer["metadata"]
    assert "private_key_jwt" in metadata["token_endpoint_auth_methods_supported"]
    # openid-client signs with the algorithm of the key, and aims at the issuer (rfc7523bis).
    expected_alg = "PS256" if name == "PS256" else KEYS[name][1]
    assert answer["assertion_header"]["alg"] == expected_alg
    assert answer["assertion_claims"]["aud"] == deployment.issuer
    assert answer["token_request_client_id"] == deployment.clients[name]
    token = answer["token"]
    assert token["scope"] == "read"
    _, claims = jwt_header_and_claims(token["access_token"])
    assert claims["client_id"] == deployment.clients[name]
    assert answer["introspection"]["active"] is True
    assert answer["introspection"]["client_id"] == deployment.clients[name]
    assert answer["revoked"] is True
    assert answer["introspection_after_revocation"] == {"active": False}


def test_openid_client_assertion_replayed_is_invalid_client(deployment: Deployment) -> None:
    answer = peer_ok(SCRIPT, **key_inputs(deployment, "ES256"), replay=True)
    assert answer["token"]["access_token"]
    assert answer["replay"]["status"] == 400
    assert answer["replay"]["body"]["error"] == "invalid_client"
    assert "already used" in answer["replay"]["body"]["error_description"]


def test_openid_client_with_a_key_that_is_not_the_clients(deployment: Deployment) -> None:
    inputs = key_inputs(deployment, "ES256") | {"private_jwk": private_jwk(IMPOSTOR)}
    error = peer_error(SCRIPT, **inputs)
    assert error["stage"] == "client_credentials"
    assert error["name"] == "ResponseBodyError"
    assert error["error"] == "invalid_client"
    assert error["status"] == 400


def test_openid_client_private_key_jwt_with_a_jwks_uri_client(deployment: Deployment) -> None:
    answer = peer_ok(
        SCRIPT,
        issuer=deployment.issuer,
        client_id=deployment.clients["uri"],
        auth_method="private_key_jwt",
        private_jwk=private_jwk(URI_KEY),
        revoke=True,
    )
    assert answer["assertion_header"]["kid"] == URI_KEY.kid
    assert answer["introspection_after_revocation"] == {"active": False}
    assert deployment.jwks_host.hits >= 1


def test_openid_client_client_secret_jwt(deployment: Deployment) -> None:
    answer = peer_ok(
        SCRIPT,
        issuer=deployment.issuer,
        client_id=deployment.clients["hs"],
        auth_method="client_secret_jwt",
        client_secret=deployment.hs_secret,
        replay=True,
    )
    assert answer["assertion_header"]["alg"] == "HS256"
    assert answer["token"]["scope"] == "read"
    assert answer["replay"]["body"]["error"] == "invalid_client"


# -- Python Authlib ----------------------------------------------------------------------------


class ShortLivedPrivateKeyJWT(PrivateKeyJWT):  # type: ignore[misc]
    """Authlib's PrivateKeyJWT with one-minute assertions (Authlib's default is one hour).

    A fresh ``claims`` dict each time: Authlib writes its generated jti into the dict
    it is given, so a shared one would repeat the jti -- a replay, to this server.
    """

    def sign(self, auth: Any, token_endpoint: str) -> str:
        self.claims = {"exp": int(time.time()) + 60}
        return str(super().sign(auth, token_endpoint))


def test_authlib_private_key_jwt_fetch_introspect_revoke(deployment: Deployment) -> None:
    key, alg = KEYS["ES256"]
    token_url = deployment.server.token_url
    # Authlib's assertions carry the token endpoint URL as aud (RFC 7523's advice): the
    # server accepts that for compatibility, besides the issuer (rfc7523bis).
    method = ShortLivedPrivateKeyJWT(token_url, alg=alg, headers={"kid": key.kid})
    with OAuth2Client(
        deployment.clients["ES256"],
        key,
        scope="read",
        token_endpoint_auth_method=method,
        revocation_endpoint_auth_method=method,
    ) as session:
        token = session.fetch_token(token_url, grant_type="client_credentials", resource=API)
        assert token["scope"] == "read"
        access_token = token["access_token"]
        _, claims = jwt_header_and_claims(access_token)
        assert claims["client_id"] == deployment.clients["ES256"]
        assert claims["aud"] == API
        again = session.fetch_token(token_url, grant_type="client_credentials")
        assert again["access_token"] != access_token  # a new assertion, a new jti

        introspection = session.introspect_token(
            f"{deployment.issuer}/introspect", token=access_token
        )
        assert introspection.status_code == 200, introspection.text
        assert introspection.json()["active"] is True
        revoked = session.revoke_token(f"{deployment.issuer}/revoke", token=access_token)
        assert revoked.status_code == 200
        after = session.introspect_token(f"{deployment.issuer}/introspect", token=access_token)
        assert after.json() == {"active": False}


def test_authlib_default_one_hour_assertion_is_refused(deployment: Deployment) -> None:
    """Authlib signs assertions valid for an hour; this server takes 5 minutes by default."""
    key, alg = KEYS["RS256"]
    token_url = deployment.server.token_url
    with (
        OAuth2Client(
            deployment.clients["RS256"],
            key,
            token_endpoint_auth_method=PrivateKeyJWT(token_url, alg=alg),
        ) as session,
        pytest.raises(AuthlibOAuthError) as info,
    ):
        session.fetch_token(token_url, grant_type="client_credentials")
    assert info.value.error == "invalid_client"
    assert "300 s ahead" in str(info.value.description)


# -- our own ClientCredentialsFlow -------------------------------------------------------------------


@pytest.mark.parametrize("name", list(KEYS))
def test_flow_private_key_jwt(deployment: Deployment, name: str) -> None:
    key, _alg = KEYS[name]
    flow = ClientCredentialsFlow(
        deployment.clients[name],
        issuer=deployment.issuer,
        auth_method="private_key_jwt",
        private_key=private_jwk(key),
        resource=API,
    )
    first = flow.get_token_sync(["read"])
    second = flow.get_token_sync(["read"], force_refresh=True)  # a new assertion: a new jti
    assert first.scopes == ("read",)
    assert second.access_token != first.access_token
    _, claims = jwt_header_and_claims(first.access_token)
    assert claims["client_id"] == deployment.clients[name]
    assert claims["aud"] == API


def test_flow_private_key_jwt_from_a_pem_file_with_token_url(
    deployment: Deployment, tmp_path: Path
) -> None:
    key, _alg = KEYS["ES256"]
    path = tmp_path / "client-key.pem"
    path.write_bytes(key.as_pem(private=True))
    # No issuer: the assertion's aud is the token endpoint URL (accepted for compatibility).
    flow = ClientCredentialsFlow(
        deployment.clients["ES256"],
        token_url=deployment.server.token_url,
        auth_method="private_key_jwt",
        private_key=path,
        key_id=key.kid,
    )
    assert flow.get_token_sync(["write"]).scopes == ("write",)


def test_flow_client_secret_jwt(deployment: Deployment) -> None:
    flow = ClientCredentialsFlow(
        deployment.clients["hs"],
        deployment.hs_secret,
        issuer=deployment.issuer,
        auth_method="client_secret_jwt",
    )
    assert flow.get_token_sync(["read"]).scopes == ("read",)
    wrong = ClientCredentialsFlow(
        deployment.clients["hs"],
        deployment.hs_secret + "x",
        issuer=deployment.issuer,
        auth_method="client_secret_jwt",
    )
    with pytest.raises(InvalidClient):
        wrong.get_token_sync(["read"])


def test_flow_with_a_key_that_is_not_the_clients_is_invalid_client(
    deployment: Deployment,
) -> None:
    flow = ClientCredentialsFlow(
        deployment.clients["ES256"],
        issuer=deployment.issuer,
        auth_method="private_key_jwt",
        private_key=private_jwk(IMPOSTOR),
    )
    with pytest.raises(InvalidClient) as info:
        flow.get_token_sync(["read"])
    assert info.value.status_code == 400


@pytest.mark.parametrize("kind", ["ES256", "hs"])
def test_a_captured_assertion_sent_again_is_invalid_client(
    deployment: Deployment, kind: str
) -> None:
    """An eavesdropper re-sends the exact token request the flow made: refused as a replay."""
    captured: list[bytes] = []

    def capture(request: httpx.Request) -> None:
        if request.url.path == "/token":
            captured.append(request.read())

    with httpx.Client(event_hooks={"request": [capture]}) as http_client:
        options: dict[str, Any] = (
            {"auth_method": "client_secret_jwt", "client_secret": deployment.hs_secret}
            if kind == "hs"
            else {"auth_method": "private_key_jwt", "private_key": private_jwk(KEYS[kind][0])}
        )
        flow = ClientCredentialsFlow(
            deployment.clients[kind], issuer=deployment.issuer, http_client=http_client, **options
        )
        flow.get_token_sync(["read"])
    (body,) = captured
    form = dict(httpx.QueryParams(body.decode()))
    assert form["client_assertion_type"] == JWT_BEARER
    _, claims = jwt_header_and_claims(form["client_assertion"])
    assert claims["aud"] == deployment.issuer
    assert claims["iss"] == claims["sub"] == deployment.clients[kind]

    replay = httpx.post(
        deployment.server.token_url,
        content=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=10,
    )
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_client"
    assert "already used" in replay.json()["error_description"]
    # The assertion is spent everywhere: at the introspection endpoint too.
    at_introspect = httpx.post(
        f"{deployment.issuer}/introspect",
        data={
            "token": "x",
            "client_assertion_type": JWT_BEARER,
            "client_assertion": form["client_assertion"],
        },
        timeout=10,
    )
    assert at_introspect.json()["error"] == "invalid_client"


def test_cli_show_lists_the_method_and_kids_never_a_secret(deployment: Deployment) -> None:
    shown = json.loads(
        cli(
            "clients",
            "show",
            deployment.clients["ES256"],
            "--format",
            "json",
            "--db",
            deployment.server.db,
        ).stdout
    )
    assert shown["auth_method"] == "private_key_jwt"
    assert shown["jwks_kids"] == [KEYS["ES256"][0].kid]
    hs = cli("clients", "show", "hs.svc", "--format", "json", "--db", deployment.server.db).stdout
    assert deployment.hs_secret not in hs
    assert json.loads(hs)["auth_method"] == "client_secret_jwt"
