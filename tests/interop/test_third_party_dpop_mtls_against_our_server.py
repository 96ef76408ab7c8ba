"""Sender-constrained tokens from real clients to ``authkestra serve``, and on to our API.

DPoP (RFC 9449): npm openid-client 6 (``randomDPoPKeyPair``, ``getDPoPHandle``,
``clientCredentialsGrant`` and ``fetchProtectedResource`` with the handle) gets DPoP-bound
tokens, with proof keys of each algorithm the server advertises, from a server that does
not ask for nonces and from one that requires them (``AUTHKESTRA_SERVER_DPOP_REQUIRE_NONCE``); it
then calls an API behind our ``BearerTokenMiddleware`` (uvicorn, in this process) with the
token and a proof, and the same token is refused there without its proof.

Mutual TLS (RFC 8705): openid-client (``TlsClientAuth`` over undici with a client
certificate) authenticates as a ``tls_client_auth`` client and as a
``self_signed_tls_client_auth`` one against ``authkestra serve --tls-cert ... --tls-client-ca
...``, gets tokens bound to its certificate (``cnf["x5t#S256"]``), introspects them with the
same authentication, and calls an API under uvicorn over TLS with the token; presented from
another certificate, or none, the token is refused. Python Authlib, which has no named mutual
TLS method, does the same through its httpx client's TLS settings and auth method ``none``
(``client_id`` in the body: the RFC 8705 request). Authlib has no DPoP support for clients.

The mutual TLS clients are registered before the server starts, so its first handshake
already trusts the self-signed certificate (no waiting for the trust refresh).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import socket
import ssl
import threading
import time
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

import httpx
import pytest
import uvicorn
from authlib.integrations.base_client import OAuthError as AuthlibOAuthError
from starlette.responses import JSONResponse

from authkestra._protocol.dpop import generate_dpop_key, proof
from authkestra.resource import JWTVerifier
from authkestra.resource.asgi import ACCESS_TOKEN_KEY, BearerTokenMiddleware
from authkestra.tls import certificate_thumbprint
from authkestra.tls.uvicorn import uvicorn_tls_options
from tests.interop.test_our_server_with_third_party_clients import (
    PEERS,
    jwt_header_and_claims,
    peer_error,
    peer_ok,
)
from tests.support.authkestra_server import AuthkestraServer, cli
from tests.support.certificates import Issued, TestPKI, self_signed
from tests.support.stores import made_store

with warnings.catch_warnings(record=True):
    # Authlib announces, on import, that it would rather use the httpx2 package than httpx.
    from authlib.integrations.httpx_client import OAuth2Client

pytestmark = pytest.mark.interop

API = "https://api.example.test/"
DPOP_SCRIPT = "openid_client_dpop_check.mjs"
MTLS_SCRIPT = "openid_client_mtls_check.mjs"
#: Proof algorithms openid-client names as our server's metadata does (Ed25519: RFC 9864's
#: fully specified name, which openid-client uses for Ed25519 keys).
DPOP_ALGS = ["ES256", "Ed25519", "RS256", "PS256"]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def jwk_thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 SHA-256 thumbprint, computed here rather than by either side under test."""
    members = {"EC": ("crv", "kty", "x", "y"), "OKP": ("crv", "kty", "x"), "RSA": ("e", "kty", "n")}
    canonical = json.dumps(
        {name: jwk[name] for name in members[jwk["kty"]]}, separators=(",", ":"), sort_keys=True
    )
    return b64url(hashlib.sha256(canonical.encode()).digest())


# -- an API behind our middleware, under uvicorn in this process --------------------------------


async def whoami(scope, receive, send):  # type: ignore[no-untyped-def]
    """What the middleware let through: the verified token's client and binding."""
    access = scope[ACCESS_TOKEN_KEY]
    answer = JSONResponse({"client_id": access.client_id, "cnf": access.claims.get("cnf")})
    await answer(scope, receive, send)


@dataclasses.dataclass(frozen=True)
class Verifying:
    """Our verifier of ``issuer``'s tokens for API, with the HTTP clients it fetches keys on.

    The clients are ours to close: the async one on the loop that used it (an API's, at
    its shutdown), so that no connection is left for the garbage collector.
    """

    verifier: JWTVerifier
    http_client: httpx.Client
    async_http_client: httpx.AsyncClient

    @classmethod
    def of(cls, issuer: str, verify: ssl.SSLContext | bool = True) -> Verifying:
        http_client = httpx.Client(verify=verify)
        async_http_client = httpx.AsyncClient(verify=verify)
        verifier = JWTVerifier(
            issuer=issuer,
            audience=API,
            # The DPoP issuers are plain http on loopback: the test setting allows it.
            allow_insecure_http=issuer.startswith("http://"),
            http_client=http_client,
            async_http_client=async_http_client,
        )
        return cls(verifier, http_client, async_http_client)


class Api:
    """An ASGI app served by uvicorn on 127.0.0.1, in a thread of this process.

    The socket is bound and listening before uvicorn starts, so its port is known and
    taken from the start: a connection made early waits in the backlog. ``closing``: async
    HTTP clients the app used, closed at the server's shutdown, on its loop.
    """

    def __init__(
        self,
        app: Any,
        *,
        closing: tuple[httpx.AsyncClient, ...] = (),
        scheme: str = "http",
        **options: Any,
    ) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen(64)
        self.url = f"{scheme}://127.0.0.1:{self.socket.getsockname()[1]}/whoami"

        async def with_lifespan(scope, receive, send):  # type: ignore[no-untyped-def]
            if scope["type"] != "lifespan":
                await app(scope, receive, send)
                return
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    for client in closing:
                        await client.aclose()
                    await send({"type": "lifespan.shutdown.complete"})
                    return

        config = uvicorn.Config(
            with_lifespan, log_level="warning", lifespan="on", loop="asyncio", **options
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True
        )
        self.thread.start()
        # Only so that a failed start shows as such rather than as a hanging client.
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "the API did not start"
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
        assert not self.thread.is_alive(), "the API did not stop"
        self.socket.close()


# -- DPoP ---------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class DPoPDeployment:
    server: AuthkestraServer
    client_id: str
    secret: str
    #: for checking tokens in the tests (synchronously)
    verifying: Verifying

    def inputs(self, **more: Any) -> dict[str, Any]:
        return {
            "issuer": self.server.issuer,
            "client_id": self.client_id,
            "client_secret": self.secret,
            "scope": "read",
            "resource": API,
            **more,
        }


def dpop_deployment(extra_env: dict[str, str] | None = None) -> Iterator[DPoPDeployment]:
    server = AuthkestraServer(extra_env=extra_env)
    verifying = Verifying.of(server.issuer)
    try:
        client_id, secret = server.create_client(
            "dpop.svc", "--scope", "read", "--audience", API, "--can-introspect", "audience"
        )
        yield DPoPDeployment(server, client_id, secret, verifying)
    finally:
        verifying.http_client.close()
        server.stop()


@pytest.fixture(scope="module")
def dpop_server() -> Iterator[DPoPDeployment]:
    """Nonces not required (the default)."""
    yield from dpop_deployment()


@pytest.fixture(scope="module")
def nonce_server() -> Iterator[DPoPDeployment]:
    """Every proof at the token endpoint must carry a nonce the server handed out."""
    yield from dpop_deployment({"AUTHKESTRA_SERVER_DPOP_REQUIRE_NONCE": "true"})


@pytest.fixture(scope="module")
def dpop_api(dpop_server: DPoPDeployment) -> Iterator[Api]:
    verifying = Verifying.of(dpop_server.server.issuer)
    api = Api(
        BearerTokenMiddleware(whoami, verifying.verifier), closing=(verifying.async_http_client,)
    )
    yield api
    api.stop()
    verifying.http_client.close()


def check_bound_to_the_peers_key(
    deployment: DPoPDeployment, answer: dict[str, Any], raw_token: dict[str, Any]
) -> Mapping[str, Any]:
    """The token as the server sent it is DPoP, signed by the server, bound to the peer's key."""
    assert raw_token["token_type"] == "DPoP"
    access = deployment.verifying.verifier.verify_sync(raw_token["access_token"])
    assert access.client_id == deployment.client_id
    assert access.scopes == ("read",)
    assert access.claims["cnf"] == {"jkt": jwk_thumbprint(answer["public_jwk"])}
    return access.claims


@pytest.mark.parametrize("alg", DPOP_ALGS)
def test_openid_client_gets_a_token_bound_to_its_dpop_key(
    dpop_server: DPoPDeployment, alg: str
) -> None:
    answer = peer_ok(DPOP_SCRIPT, **dpop_server.inputs(alg=alg, introspect=True))
    assert alg in answer["metadata"]["dpop_signing_alg_values_supported"]
    (request,) = answer["token_requests"]  # no nonce asked for: one request
    assert request["status"] == 200
    assert request["authorization_scheme"] == "Basic"
    assert request["proof_header"]["typ"] == "dpop+jwt"
    assert request["proof_header"]["alg"] == alg
    # The proof carries the public half of the key openid-client generated, nothing private.
    assert jwk_thumbprint(request["proof_header"]["jwk"]) == jwk_thumbprint(answer["public_jwk"])
    assert not {"d", "p", "q"} & set(request["proof_header"]["jwk"])
    assert request["proof_claims"]["htm"] == "POST"
    assert request["proof_claims"]["htu"] == dpop_server.server.token_url
    assert "nonce" not in request["proof_claims"]
    claims = check_bound_to_the_peers_key(dpop_server, answer, request["body"])
    assert answer["tokens"][0]["access_token"] == request["body"]["access_token"]
    # RFC 9449 §6.2: introspection says how the token is bound.
    introspection = answer["introspection"]
    assert introspection["active"] is True
    assert introspection["token_type"] == "DPoP"
    assert introspection["cnf"] == claims["cnf"]


def test_openid_client_retries_with_the_nonce_the_server_requires(
    nonce_server: DPoPDeployment,
) -> None:
    answer = peer_ok(DPOP_SCRIPT, **nonce_server.inputs(grants=2))
    challenged, retried, second_grant = answer["token_requests"]
    # RFC 9449 §8: the first proof has no nonce; the server answers use_dpop_nonce with one.
    assert "nonce" not in challenged["proof_claims"]
    assert challenged["status"] == 400
    assert challenged["body"]["error"] == "use_dpop_nonce"
    assert challenged["dpop_nonce"]
    # openid-client sends the request again by itself, its proof carrying that nonce ...
    assert retried["status"] == 200
    assert retried["proof_claims"]["nonce"] == challenged["dpop_nonce"]
    assert retried["proof_claims"]["jti"] != challenged["proof_claims"]["jti"]
    check_bound_to_the_peers_key(nonce_server, answer, retried["body"])
    # ... and remembers the latest one for the next request: no second challenge.
    assert retried["dpop_nonce"]
    assert second_grant["status"] == 200
    assert second_grant["proof_claims"]["nonce"] == retried["dpop_nonce"]
    check_bound_to_the_peers_key(nonce_server, answer, second_grant["body"])


@pytest.fixture(scope="module")
def peer_at_dpop_api(dpop_server: DPoPDeployment, dpop_api: Api) -> dict[str, Any]:
    """openid-client gets a DPoP token and calls the API with it (fetchProtectedResource)."""
    return peer_ok(DPOP_SCRIPT, **dpop_server.inputs(api_url=dpop_api.url))


def test_openid_client_calls_our_api_with_its_dpop_token(
    dpop_server: DPoPDeployment, dpop_api: Api, peer_at_dpop_api: dict[str, Any]
) -> None:
    api = peer_at_dpop_api["api"]
    assert api["status"] == 200
    jkt = jwk_thumbprint(peer_at_dpop_api["public_jwk"])
    assert api["body"] == {"client_id": dpop_server.client_id, "cnf": {"jkt": jkt}}
    # What the middleware checked (RFC 9449 §7): the DPoP scheme and a proof for this request,
    # hashing the token.
    token = peer_at_dpop_api["tokens"][0]["access_token"]
    request = api["request"]
    assert request["authorization"] == f"DPoP {token}"
    _, claims = jwt_header_and_claims(request["dpop"])
    assert claims["htm"] == "GET"
    assert claims["htu"] == dpop_api.url
    assert claims["ath"] == b64url(hashlib.sha256(token.encode()).digest())


def replayed(request: dict[str, Any], **headers: str) -> httpx.Response:
    return httpx.get(request["url"], headers=headers, timeout=10)


@pytest.mark.parametrize(
    "presentation",
    ["the-same-proof-again", "dpop-without-proof", "bearer", "proof-of-another-key"],
)
def test_the_peers_dpop_token_without_a_fresh_proof_of_its_key_is_refused(
    dpop_api: Api, peer_at_dpop_api: dict[str, Any], presentation: str
) -> None:
    request = peer_at_dpop_api["api"]["request"]
    token = peer_at_dpop_api["tokens"][0]["access_token"]
    if presentation == "the-same-proof-again":
        # The exact request openid-client sent, captured and replayed: its proof's jti is spent.
        answer = replayed(request, Authorization=request["authorization"], DPoP=request["dpop"])
    elif presentation == "dpop-without-proof":
        answer = replayed(request, Authorization=f"DPoP {token}")
    elif presentation == "bearer":
        # RFC 9449 §7.2: a DPoP-bound token presented as a bearer token is not accepted.
        answer = replayed(request, Authorization=f"Bearer {token}")
    else:
        other = proof(generate_dpop_key(), "GET", request["url"], now=int(time.time()),
                      access_token=token)  # fmt: skip
        answer = replayed(request, Authorization=f"DPoP {token}", DPoP=other)
    assert answer.status_code == 401
    challenge = answer.headers["WWW-Authenticate"]
    if presentation == "bearer":
        # Refused in the scheme it came in; the description says to use DPoP.
        assert challenge.startswith('Bearer error="invalid_token"')
        assert answer.json()["error"] == "invalid_token"
    else:
        # RFC 9449 §7.1: a DPoP challenge, with the algorithms a proof may use.
        assert challenge.startswith('DPoP error="invalid_dpop_proof"')
        assert "algs=" in challenge
        assert answer.json()["error"] == "invalid_dpop_proof"


# -- mutual TLS ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class MtlsDeployment:
    server: AuthkestraServer
    pki: TestPKI
    server_cert: Issued
    #: name -> client certificate: "svc" (CA-issued, the tls_client_auth client's subject),
    #: "other" (CA-issued, another subject), "selfie" (the self-signed client's own),
    #: "stranger" (self-signed, registered nowhere)
    certs: dict[str, Issued]
    #: auth method -> client id
    clients: dict[str, str]

    def inputs(self, method: str, cert: str | None, **more: Any) -> dict[str, Any]:
        inputs: dict[str, Any] = {
            "issuer": self.server.issuer,
            "client_id": self.clients[method],
            "ca_file": str(self.pki.ca.cert_path),
            "scope": "read",
            "resource": API,
            **more,
        }
        if cert is not None:
            inputs["cert_file"] = str(self.certs[cert].cert_path)
            inputs["key_file"] = str(self.certs[cert].key_path)
        return inputs

    def context(self, cert: str | None = None) -> ssl.SSLContext:
        """A client's TLS settings: trusts the test CA, presents ``cert`` if given."""
        context = ssl.create_default_context(cafile=str(self.pki.ca.cert_path))
        if cert is not None:
            context.load_cert_chain(self.certs[cert].cert_path, self.certs[cert].key_path)
        return context


def register(db: str, name: str, *args: str) -> str:
    out = cli(
        "clients", "create", name, "--scope", "read", "--audience", API,
        "--can-introspect", "audience", *args,
        "--format", "json", "--db", db,
    )  # fmt: skip
    document = json.loads(out.stdout)
    assert "client_secret" not in document
    client_id: str = document["client_id"]
    return client_id


@pytest.fixture(scope="module")
def mtls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MtlsDeployment]:
    if not (PEERS / "node_modules" / "undici").is_dir():
        # Added to the peers after openid-client: an older install lacks it.
        pytest.fail(f"npm package undici missing in {PEERS}: run 'make peers' (npm ci there)")
    directory = tmp_path_factory.mktemp("mtls-interop")
    pki = TestPKI(directory / "pki")
    certs = {
        "svc": pki.issue("svc", "svc", dns=("svc.interop.example",)),
        "other": pki.issue("other", "other", dns=("other.interop.example",)),
        "selfie": self_signed(directory / "self", "selfie", "selfie"),
        "stranger": self_signed(directory / "self", "stranger", "selfie"),  # same name, other key
    }
    db = made_store(directory / "authkestra.db")
    clients = {
        "tls_client_auth": register(
            db, "mtls.svc", "--auth-method", "tls_client_auth",
            "--tls-san-dns", "svc.interop.example",
        ),
        "self_signed_tls_client_auth": register(
            db, "selfie.svc", "--auth-method", "self_signed_tls_client_auth",
            "--cert", str(certs["selfie"].cert_path),
        ),
    }  # fmt: skip
    server_cert = pki.server()
    server = AuthkestraServer(
        db,
        tls=(server_cert.cert_path, server_cert.key_path, pki.ca.cert_path),
        ca_bundle=pki.ca.cert_path,
    )
    try:
        yield MtlsDeployment(server, pki, server_cert, certs, clients)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def mtls_api(mtls: MtlsDeployment) -> Iterator[Api]:
    """Our API over TLS, asking for client certificates of the test CA."""
    verifying = Verifying.of(mtls.server.issuer, mtls.context())
    api = Api(
        BearerTokenMiddleware(whoami, verifying.verifier),
        closing=(verifying.async_http_client,),
        scheme="https",
        **uvicorn_tls_options(
            mtls.server_cert.cert_path, mtls.server_cert.key_path, client_ca=mtls.pki.ca.cert_path
        ),
    )
    yield api
    api.stop()
    verifying.http_client.close()


@pytest.mark.parametrize(
    ("method", "cert"),
    [("tls_client_auth", "svc"), ("self_signed_tls_client_auth", "selfie")],
)
def test_openid_client_mutual_tls_gets_a_token_bound_to_its_certificate(
    mtls: MtlsDeployment, method: str, cert: str
) -> None:
    answer = peer_ok(MTLS_SCRIPT, **mtls.inputs(method, cert, introspect=True))
    assert method in answer["metadata"]["token_endpoint_auth_methods_supported"]
    assert answer["metadata"]["tls_client_certificate_bound_access_tokens"] is True
    # RFC 8705 §2: the client is identified by client_id in the body, authenticated by the
    # handshake; nothing else.
    request = answer["token_request"]
    assert request["authorization"] is None
    assert request["body"] == {
        "grant_type": "client_credentials",
        "client_id": mtls.clients[method],
        "scope": "read",
        "resource": API,
    }
    raw = answer["token_response"]
    assert raw["token_type"] == "Bearer"  # RFC 8705 §3: still a bearer scheme
    _, claims = jwt_header_and_claims(raw["access_token"])
    thumbprint = certificate_thumbprint(mtls.certs[cert].der)
    assert claims["cnf"] == {"x5t#S256": thumbprint}
    assert claims["client_id"] == mtls.clients[method]
    assert claims["aud"] == API
    # RFC 8705 §3.2: introspection, with the same authentication, shows the binding.
    introspection = answer["introspection"]
    assert introspection["active"] is True
    assert introspection["cnf"] == {"x5t#S256": thumbprint}


@pytest.mark.parametrize(
    ("method", "cert"),
    [
        pytest.param("tls_client_auth", None, id="tls_client_auth-no-certificate"),
        pytest.param("tls_client_auth", "other", id="tls_client_auth-another-subject"),
        pytest.param("tls_client_auth", "selfie", id="tls_client_auth-self-signed"),
        pytest.param("self_signed_tls_client_auth", None, id="self_signed-no-certificate"),
        pytest.param("self_signed_tls_client_auth", "svc", id="self_signed-a-ca-issued-one"),
    ],
)
def test_openid_client_without_the_clients_certificate_is_invalid_client(
    mtls: MtlsDeployment, method: str, cert: str | None
) -> None:
    error = peer_error(MTLS_SCRIPT, **mtls.inputs(method, cert))
    assert error["stage"] == "client_credentials"
    assert error["name"] == "ResponseBodyError"
    assert error["error"] == "invalid_client"
    assert error["status"] == 400


def test_an_unregistered_self_signed_certificate_does_not_get_through_the_handshake(
    mtls: MtlsDeployment,
) -> None:
    # The server's TLS layer trusts the CA and the registered self-signed certificates
    # only: this one (same subject as a registered one, another key) fails the handshake,
    # so even discovery fails, as a network error rather than an OAuth one. (How undici
    # words it depends on when the TLS 1.3 alert arrives: only the kind is checked.)
    error = peer_error(MTLS_SCRIPT, **mtls.inputs("self_signed_tls_client_auth", "stranger"))
    assert error["stage"] == "discovery"
    assert error["name"] == "TypeError"
    assert error["message"] == "fetch failed"


def test_openid_client_calls_our_api_over_mutual_tls_with_its_bound_token(
    mtls: MtlsDeployment, mtls_api: Api
) -> None:
    answer = peer_ok(MTLS_SCRIPT, **mtls.inputs("tls_client_auth", "svc", api_url=mtls_api.url))
    thumbprint = certificate_thumbprint(mtls.certs["svc"].der)
    assert answer["api"] == {
        "status": 200,
        "body": {"client_id": mtls.clients["tls_client_auth"], "cnf": {"x5t#S256": thumbprint}},
    }
    # RFC 8705 §3: the same token from a connection with another certificate, or none, is
    # refused.
    token = answer["token"]["access_token"]
    for cert in ("other", None):
        refused = httpx.get(
            mtls_api.url,
            headers={"Authorization": f"Bearer {token}"},
            verify=mtls.context(cert),
            timeout=10,
        )
        assert refused.status_code == 401, cert
        assert 'error="invalid_token"' in refused.headers["WWW-Authenticate"]


# -- Python Authlib, mutual TLS -------------------------------------------------------------------


def test_authlib_tls_client_auth_through_its_httpx_client(
    mtls: MtlsDeployment, mtls_api: Api
) -> None:
    """Authlib names no mutual TLS method: its auth method ``none`` puts client_id in the
    body, and the certificate goes in the httpx client's TLS settings -- which is the whole
    of an RFC 8705 §2 request."""
    with OAuth2Client(
        mtls.clients["tls_client_auth"],
        token_endpoint_auth_method="none",
        scope="read",
        verify=mtls.context("svc"),
        timeout=10,
    ) as session:
        token = session.fetch_token(
            mtls.server.token_url, grant_type="client_credentials", resource=API
        )
        assert token["token_type"] == "Bearer"
        _, claims = jwt_header_and_claims(token["access_token"])
        assert claims["cnf"] == {"x5t#S256": certificate_thumbprint(mtls.certs["svc"].der)}
        # The session sends the token (as Bearer) over the same mutual TLS settings.
        answer = session.get(mtls_api.url)
        assert answer.status_code == 200, answer.text
        assert answer.json()["client_id"] == mtls.clients["tls_client_auth"]


def test_authlib_without_a_certificate_is_invalid_client(mtls: MtlsDeployment) -> None:
    with (
        OAuth2Client(
            mtls.clients["tls_client_auth"],
            token_endpoint_auth_method="none",
            verify=mtls.context(),
            timeout=10,
        ) as session,
        pytest.raises(AuthlibOAuthError) as info,
    ):
        session.fetch_token(mtls.server.token_url, grant_type="client_credentials")
    assert info.value.error == "invalid_client"
