"""DPoP-bound tokens from the authorization server (RFC 9449 §5, §8): proofs checked, nonces."""

from __future__ import annotations

import base64
import json
import secrets
import time
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import OctKey, OKPKey, RSAKey

from authkestra import ClientCredentialsFlow, RetryPolicy
from authkestra._jose.signing import jws_registry
from authkestra._protocol.client_assertion import AssertionKey
from authkestra._protocol.client_auth import basic_credentials
from authkestra._protocol.dpop import DPoPKey, dpop_key, generate_dpop_key, proof
from authkestra.server import ServerSettings
from authkestra.server.context import hasher_for
from authkestra.server.dpop import DPoPNonces
from authkestra.server.store import Store, new_secret
from tests.server.conftest import MakeServer
from tests.server.harness import API, ISSUER, InProcessServer, jose_part, verify_with_jwks
from tests.support.authkestra_server import AuthkestraServer

TOKEN_URL = f"{ISSUER}/token"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _claims(**changes: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "jti": secrets.token_urlsafe(16),
        "htm": "POST",
        "htu": TOKEN_URL,
        "iat": int(time.time()),
    }
    for name, value in changes.items():
        if value is None:
            claims.pop(name, None)
        else:
            claims[name] = value
    return claims


def _signed(key: DPoPKey, claims: dict[str, Any], **header: Any) -> str:
    full = {"typ": "dpop+jwt", "alg": key.alg, "jwk": dict(key.public_jwk), **header}
    return jwt.encode(full, claims, key.key, registry=jws_registry(full["alg"]))


def _request(server: InProcessServer, client: tuple[str, str], proofs: list[str]) -> httpx.Response:
    headers = [
        ("Content-Type", "application/x-www-form-urlencoded"),
        ("Authorization", basic_credentials(*client)),
        *(("DPoP", p) for p in proofs),
    ]
    return server.post("/token", content=b"grant_type=client_credentials", headers=headers)


def _error(response: httpx.Response, error: str) -> None:
    assert response.status_code == 400, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["error"] == error, response.json()
    assert "access_token" not in response.text


@pytest.fixture
def client(server: InProcessServer) -> tuple[str, str]:
    return server.add_client()


# -- issuance ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "signer",
    [
        pytest.param(generate_dpop_key, id="ES256"),
        pytest.param(
            lambda: dpop_key(AssertionKey(OKPKey.generate_key("Ed25519", private=True), "EdDSA")),
            id="EdDSA",
        ),
    ],
)
def test_a_valid_proof_gets_a_dpop_bound_token(
    server: InProcessServer, client: tuple[str, str], signer: Any
) -> None:
    key: DPoPKey = signer()
    response = _request(server, client, [proof(key, "POST", TOKEN_URL, now=int(time.time()))])
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "DPoP"
    claims = verify_with_jwks(body["access_token"], server.jwks())
    assert claims["cnf"] == {"jkt": key.thumbprint}
    assert "dpop-nonce" not in response.headers  # nonces not required by default


@pytest.mark.parametrize("alg", ["RS256", "PS256"])
def test_rsa_proofs_are_accepted(
    server: InProcessServer, client: tuple[str, str], alg: str
) -> None:
    rsa = RSAKey.generate_key(2048, private=True)
    public = {k: str(v) for k, v in rsa.as_dict(private=False).items()}
    key = DPoPKey(rsa, alg, public, str(rsa.thumbprint()))
    response = _request(server, client, [_signed(key, _claims())])
    assert response.status_code == 200, response.text
    assert jose_part(response.json()["access_token"], 1)["cnf"] == {"jkt": key.thumbprint}


def test_without_a_dpop_header_the_token_stays_bearer(
    server: InProcessServer, client: tuple[str, str]
) -> None:
    response = server.token(client)
    assert response.status_code == 200
    assert response.json()["token_type"] == "Bearer"
    assert "cnf" not in jose_part(response.json()["access_token"], 1)


def test_metadata_advertises_the_proof_algorithms(server: InProcessServer) -> None:
    document = server.get("/.well-known/oauth-authorization-server").json()
    algs = document["dpop_signing_alg_values_supported"]
    assert {"ES256", "EdDSA", "RS256", "PS256"} <= set(algs)
    assert not any(a == "none" or a.startswith("HS") for a in algs)


# -- refusals -------------------------------------------------------------------------------


def test_a_replayed_proof_is_refused(server: InProcessServer, client: tuple[str, str]) -> None:
    one = proof(generate_dpop_key(), "POST", TOKEN_URL, now=int(time.time()))
    assert _request(server, client, [one]).status_code == 200
    _error(_request(server, client, [one]), "invalid_dpop_proof")


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"htm": "GET"}, id="wrong-htm"),
        pytest.param({"htu": "https://as.example.test/introspect"}, id="wrong-htu"),
        pytest.param({"htu": "https://other.example.test/token"}, id="other-host"),
        pytest.param({"iat": int(time.time()) - 3600}, id="stale-iat"),
        pytest.param({"iat": int(time.time()) + 3600}, id="future-iat"),
        pytest.param({"iat": None}, id="no-iat"),
        pytest.param({"jti": None}, id="no-jti"),
    ],
)
def test_proofs_with_wrong_claims_are_refused(
    server: InProcessServer, client: tuple[str, str], changes: dict[str, Any]
) -> None:
    token = _signed(generate_dpop_key(), _claims(**changes))
    _error(_request(server, client, [token]), "invalid_dpop_proof")


def test_htu_is_compared_without_query_and_fragment(
    server: InProcessServer, client: tuple[str, str]
) -> None:
    token = _signed(generate_dpop_key(), _claims(htu=f"{TOKEN_URL}?x=1#frag"))
    assert _request(server, client, [token]).status_code == 200


def test_alg_none_is_refused(server: InProcessServer, client: tuple[str, str]) -> None:
    key = generate_dpop_key()
    header = {"typ": "dpop+jwt", "alg": "none", "jwk": dict(key.public_jwk)}
    token = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(_claims()).encode())}."
    _error(_request(server, client, [token]), "invalid_dpop_proof")
    # Even with something in the signature slot.
    _error(_request(server, client, [token + "AAAA"]), "invalid_dpop_proof")


def test_hs256_is_refused(server: InProcessServer, client: tuple[str, str]) -> None:
    oct_key = OctKey.generate_key(256, private=True)
    header = {"typ": "dpop+jwt", "alg": "HS256", "jwk": oct_key.as_dict(private=False)}
    token = jwt.encode(header, _claims(), oct_key, registry=jws_registry("HS256"))
    _error(_request(server, client, [token]), "invalid_dpop_proof")


def test_a_private_jwk_in_the_header_is_refused(
    server: InProcessServer, client: tuple[str, str]
) -> None:
    key = generate_dpop_key()
    token = _signed(key, _claims(), jwk=key.key.as_dict(private=True))
    _error(_request(server, client, [token]), "invalid_dpop_proof")


def test_a_jwk_not_fitting_the_alg_is_refused(
    server: InProcessServer, client: tuple[str, str]
) -> None:
    signer = dpop_key(AssertionKey(OKPKey.generate_key("Ed25519", private=True), "EdDSA"))
    ec_jwk = dict(generate_dpop_key().public_jwk)  # an EC key named for an EdDSA signature
    _error(_request(server, client, [_signed(signer, _claims(), jwk=ec_jwk)]), "invalid_dpop_proof")


def test_a_bad_signature_is_refused(server: InProcessServer, client: tuple[str, str]) -> None:
    key = generate_dpop_key()
    token = _signed(key, _claims())
    other = _signed(generate_dpop_key(), _claims())
    forged = ".".join(token.split(".")[:2] + other.split(".")[2:])
    _error(_request(server, client, [forged]), "invalid_dpop_proof")


def test_a_wrong_typ_or_garbage_is_refused(
    server: InProcessServer, client: tuple[str, str]
) -> None:
    key = generate_dpop_key()
    _error(_request(server, client, [_signed(key, _claims(), typ="JWT")]), "invalid_dpop_proof")
    _error(_request(server, client, ["not-a-jws"]), "invalid_dpop_proof")
    _error(_request(server, client, ["a.b.c"]), "invalid_dpop_proof")


def test_two_dpop_headers_are_refused(server: InProcessServer, client: tuple[str, str]) -> None:
    key = generate_dpop_key()
    now = int(time.time())
    proofs = [proof(key, "POST", TOKEN_URL, now=now), proof(key, "POST", TOKEN_URL, now=now)]
    _error(_request(server, client, proofs), "invalid_dpop_proof")


def test_client_authentication_comes_first(server: InProcessServer) -> None:
    token = proof(generate_dpop_key(), "POST", TOKEN_URL, now=int(time.time()))
    response = _request(server, ("nobody", "wrong-secret"), [token])
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


# -- nonces -------------------------------------------------------------------------------


def test_a_missing_or_wrong_nonce_is_challenged_and_the_given_one_works(
    make_server: MakeServer,
) -> None:
    server = make_server(dpop_require_nonce=True)
    client = server.add_client()
    key = generate_dpop_key()

    challenged = _request(server, client, [proof(key, "POST", TOKEN_URL, now=int(time.time()))])
    _error(challenged, "use_dpop_nonce")
    nonce = challenged.headers["DPoP-Nonce"]
    assert nonce

    wrong = proof(key, "POST", TOKEN_URL, now=int(time.time()), nonce="made-up")
    _error(_request(server, client, [wrong]), "use_dpop_nonce")

    good = proof(key, "POST", TOKEN_URL, now=int(time.time()), nonce=nonce)
    response = _request(server, client, [good])
    assert response.status_code == 200, response.text
    assert response.json()["token_type"] == "DPoP"
    assert response.headers["DPoP-Nonce"]


def test_nonces_hold_for_two_windows_and_across_instances() -> None:
    now = [1_000_000.0]
    one = DPoPNonces(b"k" * 32, window=300, clock=lambda: now[0])
    two = DPoPNonces(b"k" * 32, window=300, clock=lambda: now[0])
    other_key = DPoPNonces(b"x" * 32, window=300, clock=lambda: now[0])
    nonce = one.current()
    assert two.is_valid(nonce)  # no shared state needed
    assert not other_key.is_valid(nonce)
    now[0] += 300
    assert two.is_valid(nonce) and two.current() != nonce
    now[0] += 300
    assert not two.is_valid(nonce)


# -- end to end: our own flow against authkestra serve ----------------------------------------


def _register(server: AuthkestraServer) -> tuple[str, str]:
    store = Store(server.db)
    secret = new_secret()
    client_id = f"svc-{secrets.token_hex(4)}"
    try:
        store.create_client(
            client_id,
            secret_hash=hasher_for(ServerSettings(db=server.db), store).hash(secret),
            auth_method="client_secret_basic",
            scopes=("read",),
            audiences=(API,),
        )
    finally:
        store.close()
    return client_id, secret


@pytest.mark.parametrize("require_nonce", [False, True], ids=["no-nonce", "nonce"])
def test_the_flow_gets_a_dpop_token_from_a_real_server(require_nonce: bool) -> None:
    env = {"AUTHKESTRA_SERVER_DPOP_REQUIRE_NONCE": "true"} if require_nonce else {}
    srv = AuthkestraServer(extra_env=env)
    try:
        client = _register(srv)
        flow = ClientCredentialsFlow(
            *client, issuer=srv.issuer, dpop=True, retry=RetryPolicy(max_attempts=1)
        )
        token = flow.get_token_sync(["read"])
        assert token.token_type == "DPoP"
        jwks = httpx.get(f"{srv.issuer}/jwks.json").json()
        claims = verify_with_jwks(token.access_token, jwks)
        assert claims["cnf"] == {"jkt": flow.dpop_thumbprint}
        log = srv.log_path.read_text(errors="replace")
        assert "Traceback" not in log, log[-3000:]
    finally:
        srv.stop()
