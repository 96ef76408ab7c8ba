"""POST /token: RFC 6749 §4.4 / §5.1 answers, RFC 9068 JWTs, §5.2 errors."""

from __future__ import annotations

import base64
import time
from urllib.parse import quote

import pytest

from tests.server.conftest import MakeServer
from tests.server.harness import (
    API,
    API2,
    ISSUER,
    InProcessServer,
    assert_oauth_error,
    jose_part,
    verify_with_jwks,
)

# Characters RFC 6749 §2.3.1 form encoding changes: space, '+', '%', ':', '&', '='.
AWKWARD_SECRET = "s e+c%r:e&t=1~x"


def basic_header(user: str, password: str) -> dict[str, str]:
    raw = f"{user}:{password}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode("ascii")}


def post_token(server: InProcessServer, body: str, **headers: str) -> object:
    return server.post(
        "/token",
        content=body.encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded", **headers},
    )


# -- success (RFC 6749 §5.1) -------------------------------------------------------------


def test_basic_client_gets_a_bearer_token_not_to_be_cached(server: InProcessServer) -> None:
    client = server.add_client()
    response = server.token(client)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "scope"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["scope"] == "read write"


def test_post_client_gets_a_token(server: InProcessServer) -> None:
    client = server.add_client(auth_method="client_secret_post")
    response = server.token(client, post=True)
    assert response.status_code == 200, response.text
    assert response.json()["token_type"] == "Bearer"


def test_access_token_is_an_rfc9068_jwt_signed_with_es256(server: InProcessServer) -> None:
    client_id, secret = server.add_client(scopes=("read",))
    before = int(time.time())
    token = server.access_token((client_id, secret))
    header = jose_part(token, 0)
    assert header["typ"] == "at+jwt"
    assert header["alg"] == "ES256"
    jwks = server.jwks()
    assert header["kid"] in {key["kid"] for key in jwks["keys"]}
    claims = verify_with_jwks(token, jwks)
    assert claims["iss"] == ISSUER
    assert claims["sub"] == client_id
    assert claims["client_id"] == client_id
    assert claims["aud"] == API
    assert claims["scope"] == "read"
    assert isinstance(claims["jti"], str) and len(claims["jti"]) >= 16
    assert before <= claims["iat"] <= int(time.time())
    assert claims["exp"] - claims["iat"] == 3600


def test_every_token_has_its_own_jti(server: InProcessServer) -> None:
    client = server.add_client()
    jtis = {jose_part(server.access_token(client), 1)["jti"] for _ in range(5)}
    assert len(jtis) == 5


@pytest.mark.parametrize(
    ("alg", "kty", "crv"), [("EdDSA", "OKP", "Ed25519"), ("RS256", "RSA", None)]
)
def test_signing_algorithm_is_a_setting(
    make_server: MakeServer, alg: str, kty: str, crv: str | None
) -> None:
    server = make_server(signing_alg=alg)
    token = server.access_token(server.add_client())
    header = jose_part(token, 0)
    assert header["alg"] == alg
    assert header["typ"] == "at+jwt"
    jwks = server.jwks()
    (key,) = [k for k in jwks["keys"] if k["kid"] == header["kid"]]
    assert key["kty"] == kty
    assert key.get("crv") == crv
    assert key["alg"] == alg
    assert verify_with_jwks(token, jwks)["iss"] == ISSUER
    metadata = server.get("/.well-known/oauth-authorization-server").json()
    assert metadata["access_token_signing_alg_values_supported"] == [alg]


def test_token_lifetime_per_client_and_server_default(make_server: MakeServer) -> None:
    server = make_server(default_token_ttl=900)
    short = server.add_client(token_ttl=120)
    default = server.add_client()
    response = server.token(short)
    assert response.json()["expires_in"] == 120
    claims = jose_part(response.json()["access_token"], 1)
    assert claims["exp"] - claims["iat"] == 120
    response = server.token(default)
    assert response.json()["expires_in"] == 900
    claims = jose_part(response.json()["access_token"], 1)
    assert claims["exp"] - claims["iat"] == 900


# -- RFC 6749 §2.3.1: form-encoded client id and secret in Basic ------------------------


@pytest.fixture(scope="module")
def awkward(shared_server: InProcessServer) -> tuple[str, str]:
    return shared_server.add_client("svc.a~b-c", AWKWARD_SECRET)


def test_basic_form_encoded_by_the_library(
    shared_server: InProcessServer, awkward: tuple[str, str]
) -> None:
    response = shared_server.token(awkward)
    assert response.status_code == 200, response.text
    assert jose_part(response.json()["access_token"], 1)["client_id"] == "svc.a~b-c"


@pytest.mark.parametrize(
    ("user", "password"),
    [
        # Every character percent-encoded, upper- and lower-case hex.
        ("".join(f"%{b:02X}" for b in b"svc.a~b-c"), quote(AWKWARD_SECRET, safe="")),
        ("".join(f"%{b:02x}" for b in b"svc.a~b-c"), quote(AWKWARD_SECRET, safe="").lower()),
        # '+' for the space, the rest escaped.
        ("svc.a%7Eb-c", "s+e%2Bc%25r%3Ae%26t%3D1~x"),
        ("svc%2Ea~b%2Dc", "s+e%2Bc%25r%3Ae%26t%3D1%7Ex"),
    ],
)
def test_basic_decodes_plus_and_percent_escapes(
    shared_server: InProcessServer, awkward: tuple[str, str], user: str, password: str
) -> None:
    response = post_token(
        shared_server, "grant_type=client_credentials", **basic_header(user, password)
    )
    assert response.status_code == 200, response.text  # type: ignore[attr-defined]


def test_basic_without_form_encoding_is_decoded_so_a_plus_is_a_space(
    server: InProcessServer,
) -> None:
    # Sent raw, '+' arrives as a space: the server does apply the RFC 6749 decoding.
    server.add_client("svc-plus", "a+b")
    refused = post_token(server, "grant_type=client_credentials", **basic_header("svc-plus", "a+b"))
    assert_oauth_error(refused, "invalid_client", 401)  # type: ignore[arg-type]
    accepted = post_token(
        server, "grant_type=client_credentials", **basic_header("svc-plus", "a%2Bb")
    )
    assert accepted.status_code == 200  # type: ignore[attr-defined]


def test_awkward_secret_in_the_body(server: InProcessServer) -> None:
    client = server.add_client("svc.x~y-z", AWKWARD_SECRET, auth_method="client_secret_post")
    assert server.token(client, post=True).status_code == 200


# -- scopes (RFC 6749 §3.3) --------------------------------------------------------------


@pytest.fixture(scope="module")
def scoped(shared_server: InProcessServer) -> tuple[str, str]:
    return shared_server.add_client(scopes=("read", "write", "admin"), default_scopes=("read",))


@pytest.mark.parametrize(
    ("requested", "granted"),
    [
        (None, "read"),  # the client's default scopes
        ("", "read"),  # empty is absent
        ("write", "write"),
        ("admin read", "admin read"),
        ("read write admin", "read write admin"),
        ("read read", "read"),
        ("  write  ", "write"),
    ],
)
def test_granted_scopes(
    shared_server: InProcessServer, scoped: tuple[str, str], requested: str | None, granted: str
) -> None:
    params = {} if requested is None else {"scope": requested}
    response = shared_server.token(scoped, params)
    assert response.status_code == 200, response.text
    assert response.json()["scope"] == granted
    assert jose_part(response.json()["access_token"], 1)["scope"] == granted


def test_no_scope_requested_and_no_defaults_grants_all(server: InProcessServer) -> None:
    client = server.add_client(scopes=("read", "write"))
    assert server.token(client).json()["scope"] == "read write"


def test_client_without_scopes_gets_a_token_without_scope(server: InProcessServer) -> None:
    client = server.add_client(scopes=())
    body = server.token(client).json()
    assert "scope" not in body
    assert "scope" not in jose_part(body["access_token"], 1)


@pytest.mark.parametrize(
    "requested",
    ["delete", "read delete", "READ", "read\twrite", "read\u00a0write", 'read"', "r\\w"],
)
def test_scope_not_allowed_is_invalid_scope(
    shared_server: InProcessServer, scoped: tuple[str, str], requested: str
) -> None:
    assert_oauth_error(shared_server.token(scoped, {"scope": requested}), "invalid_scope", 400)


# -- resource / audience (RFC 8707) -----------------------------------------------------


@pytest.fixture(scope="module")
def two_apis(shared_server: InProcessServer) -> tuple[str, str]:
    return shared_server.add_client(audiences=(API, API2))


@pytest.mark.parametrize(
    ("params", "aud"),
    [
        ([("resource", API)], API),
        ([("audience", API2)], API2),
        ([("resource", API), ("resource", API)], API),  # repeated resource is allowed
        ([("resource", API), ("resource", API2)], [API, API2]),
        ([("resource", API2), ("audience", API)], [API2, API]),
        ([], [API, API2]),  # none requested: every allowed audience
    ],
)
def test_audience_from_resource_or_audience(
    shared_server: InProcessServer,
    two_apis: tuple[str, str],
    params: list[tuple[str, str]],
    aud: object,
) -> None:
    response = shared_server.token(two_apis, params)
    assert response.status_code == 200, response.text
    assert jose_part(response.json()["access_token"], 1)["aud"] == aud


@pytest.mark.parametrize(
    "params",
    [
        [("resource", "https://elsewhere.example.test/")],
        [("resource", API), ("resource", "https://elsewhere.example.test/")],
        [("audience", "https://api.example.test")],  # no trailing slash: a different URI
        [("resource", "")],
    ],
)
def test_target_outside_the_audiences_is_invalid_target(
    shared_server: InProcessServer, two_apis: tuple[str, str], params: list[tuple[str, str]]
) -> None:
    assert_oauth_error(shared_server.token(two_apis, params), "invalid_target", 400)


def test_client_without_audiences_gets_the_issuer(server: InProcessServer) -> None:
    client = server.add_client(audiences=())
    assert jose_part(server.access_token(client), 1)["aud"] == ISSUER
    assert_oauth_error(server.token(client, {"resource": API}), "invalid_target", 400)


# -- errors (RFC 6749 §5.2) --------------------------------------------------------------


def test_wrong_secret_with_basic_is_401_with_a_challenge(server: InProcessServer) -> None:
    client_id, _ = server.add_client()
    response = server.token((client_id, "wrong"))
    body = assert_oauth_error(response, "invalid_client", 401)
    assert "access_token" not in body
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("Basic ")
    assert f'realm="{ISSUER}"' in challenge
    assert response.headers["cache-control"] == "no-store"


def test_wrong_secret_in_the_body_is_400_without_a_challenge(server: InProcessServer) -> None:
    client_id, _ = server.add_client(auth_method="client_secret_post")
    response = server.token((client_id, "wrong"), post=True)
    assert_oauth_error(response, "invalid_client", 400)
    assert "www-authenticate" not in response.headers


def test_no_client_authentication_is_invalid_client(server: InProcessServer) -> None:
    response = server.form("/token", {"grant_type": "client_credentials"})
    assert_oauth_error(response, "invalid_client", 400)
    response = server.form("/token", {"grant_type": "client_credentials", "client_id": "svc"})
    assert_oauth_error(response, "invalid_client", 400)


def test_a_client_is_bound_to_its_authentication_method(server: InProcessServer) -> None:
    basic_client = server.add_client()
    post_client = server.add_client(auth_method="client_secret_post")
    assert_oauth_error(server.token(basic_client, post=True), "invalid_client", 400)
    assert_oauth_error(server.token(post_client), "invalid_client", 401)


def test_two_credentials_are_invalid_request(server: InProcessServer) -> None:
    client_id, secret = server.add_client()
    response = server.form(
        "/token",
        {"grant_type": "client_credentials", "client_secret": secret},
        basic=(client_id, secret),
    )
    assert_oauth_error(response, "invalid_request", 400)


def test_client_id_in_body_must_match_the_header(server: InProcessServer) -> None:
    client_id, secret = server.add_client()
    other_id, _ = server.add_client()
    mismatch = server.form(
        "/token",
        {"grant_type": "client_credentials", "client_id": other_id},
        basic=(client_id, secret),
    )
    assert_oauth_error(mismatch, "invalid_request", 400)
    same = server.form(
        "/token",
        {"grant_type": "client_credentials", "client_id": client_id},
        basic=(client_id, secret),
    )
    assert same.status_code == 200


@pytest.mark.parametrize("params", [{"scope": "read"}, {"grant_type": ""}])
def test_missing_grant_type_is_invalid_request(
    server: InProcessServer, params: dict[str, str]
) -> None:
    client = server.add_client()
    response = server.form("/token", params, basic=client)
    assert_oauth_error(response, "invalid_request", 400)


@pytest.mark.parametrize(
    "grant_type",
    [
        "password",
        "authorization_code",
        "refresh_token",
        "client_credentials ",
        "CLIENT_CREDENTIALS",
    ],
)
def test_other_grant_types_are_unsupported(server: InProcessServer, grant_type: str) -> None:
    client = server.add_client()
    response = server.form("/token", {"grant_type": grant_type}, basic=client)
    assert_oauth_error(response, "unsupported_grant_type", 400)


def test_client_authentication_comes_before_the_grant(server: InProcessServer) -> None:
    client_id, _ = server.add_client()
    response = server.form("/token", {"grant_type": "password"}, basic=(client_id, "wrong"))
    assert_oauth_error(response, "invalid_client", 401)


def test_disabled_client_is_invalid_client_until_enabled(server: InProcessServer) -> None:
    client = server.add_client()
    server.ctx.store.set_enabled(client[0], False)
    assert_oauth_error(server.token(client), "invalid_client", 401)
    server.ctx.store.set_enabled(client[0], True)
    assert server.token(client).status_code == 200


def test_unknown_and_deleted_clients_are_invalid_client(server: InProcessServer) -> None:
    assert_oauth_error(server.token(("nobody", "secret")), "invalid_client", 401)
    client = server.add_client()
    server.ctx.store.delete_client(client[0])
    assert_oauth_error(server.token(client), "invalid_client", 401)


def test_every_failure_reads_the_same(server: InProcessServer) -> None:
    """Unknown, wrong secret, wrong method, disabled: one answer, nothing to tell them apart."""
    client_id, _ = server.add_client()
    disabled = server.add_client()
    server.ctx.store.set_enabled(disabled[0], False)
    post_client = server.add_client(auth_method="client_secret_post")
    answers = [
        server.token(("nobody", "secret")),
        server.token((client_id, "wrong")),
        server.token(disabled),
        server.token(post_client),
    ]
    bodies = {r.text for r in answers}
    assert len(bodies) == 1
    assert {r.status_code for r in answers} == {401}
