"""Client authentication with keys (RFC 7523): ``private_key_jwt`` and ``client_secret_jwt``.

The server side: clients registered with a public JWK Set (inline, or a
``jwks_uri`` fetched under SSRF rules) or with a secret kept encrypted; every
assertion checked for iss/sub, aud, exp (required and bounded), nbf/iat, a
signature with an algorithm the key decides, and a jti used once per client
(store INSERT, or Redis SET NX). Every refusal is a typed OAuth error.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.server
import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis as redis_py
from alembic import command
from alembic.config import Config
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc import jws, jwt
from joserfc.jwk import ECKey, OctKey, OKPKey, RSAKey

from authkestra._jose.signing import jws_registry
from authkestra._protocol.client_assertion import JWT_BEARER
from authkestra.server import jwks_uri as jwks_uri_module
from authkestra.server.client_keys import InvalidJwks, normalize_jwks, parse_jwks
from authkestra.server.context import secret_box_for
from authkestra.server.endpoints.token import _in_memory
from authkestra.server.jwks_uri import JwksUriError, check_jwks_uri, fetch_jwks
from authkestra.server.oauth_request import client_credentials
from authkestra.server.secret_box import SecretBox
from authkestra.server.store import Store, new_secret
from authkestra.server.store.store import MIGRATIONS
from tests.server.conftest import MakeServer
from tests.server.harness import (
    ADDRESS,
    API,
    ISSUER,
    InProcessServer,
    assert_oauth_error,
    b64url,
    jose_part,
)
from tests.server.test_clients_cli import all_rows, run
from tests.support.stores import made_store

TOKEN_ENDPOINT = f"{ISSUER}/token"

# Parsing and generating keys costs milliseconds (RSA: more): made once for the module.
KEYS: dict[str, Any] = {
    "ES256": ECKey.generate_key("P-256", {"kid": "es256-1"}, private=True),
    "ES384": ECKey.generate_key("P-384", {"kid": "es384-1"}, private=True),
    "EdDSA": OKPKey.generate_key("Ed25519", {"kid": "ed-1"}, private=True),
    "RS256": RSAKey.generate_key(2048, {"kid": "rsa-1"}, private=True),
}
OTHER_EC = ECKey.generate_key("P-256", {"kid": "es256-1"}, private=True)  # same kid, not theirs
_SMALL = (
    rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key().public_numbers()
)
#: joserfc will not even import an RSA key this small without a warning: a JWK by hand.
SMALL_RSA_JWK = {
    "kty": "RSA",
    "kid": "small",
    "n": b64url(_SMALL.n.to_bytes(128, "big")),
    "e": b64url(_SMALL.e.to_bytes(3, "big")),
}


def public_jwk(key: Any, **members: Any) -> dict[str, Any]:
    return {**key.as_dict(private=False), "kid": key.kid, **members}


def jwks_of(*keys: Any) -> str:
    return json.dumps({"keys": [public_jwk(k) for k in keys]})


# -- registering clients through the store ---------------------------------------------------


def add_key_client(
    server: InProcessServer,
    *keys: Any,
    client_id: str | None = None,
    jwks: str | None = None,
    jwks_uri: str | None = None,
    scopes: tuple[str, ...] = ("read", "write"),
) -> str:
    """A private_key_jwt client with ``keys`` (or the given JWK Set text / jwks_uri)."""
    client_id = client_id or f"pk-{secrets.token_hex(4)}"
    stored = None
    if jwks_uri is None:
        stored, _ = normalize_jwks(jwks or jwks_of(*keys))
    server.ctx.store.create_client(
        client_id,
        secret_hash=None,
        auth_method="private_key_jwt",
        scopes=scopes,
        audiences=(API,),
        jwks=stored,
        jwks_uri=jwks_uri,
        introspection="audience",  # it plays the API too
    )
    return client_id


def add_secret_jwt_client(server: InProcessServer, client_id: str | None = None) -> tuple[str, str]:
    """A client_secret_jwt client: (client_id, secret)."""
    client_id = client_id or f"hs-{secrets.token_hex(4)}"
    secret = new_secret()
    server.ctx.store.create_client(
        client_id,
        secret_hash=server.ctx.hasher.hash(secret),
        encrypted_secret=secret_box_for(server.settings, server.ctx.store).encrypt(
            secret, client_id
        ),
        auth_method="client_secret_jwt",
        scopes=("read", "write"),
        audiences=(API,),
        introspection="audience",
    )
    return client_id, secret


# -- making assertions -----------------------------------------------------------------------


def claims_for(client_id: str, **changes: Any) -> dict[str, Any]:
    """Assertion claims as a client makes them, with ``changes`` (None deletes)."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": client_id,
        "sub": client_id,
        "aud": ISSUER,
        "iat": now,
        "exp": now + 60,
        "jti": secrets.token_urlsafe(24),
    }
    for name, value in changes.items():
        if value is None:
            claims.pop(name, None)
        else:
            claims[name] = value
    return claims


def sign(key: Any, alg: str, claims: dict[str, Any], *, kid: Any = "default", **header: Any) -> str:
    full: dict[str, Any] = {"alg": alg, "typ": "JWT", **header}
    kid = key.kid if kid == "default" else kid
    if kid is not None:
        full["kid"] = kid
    return str(jwt.encode(full, claims, key, registry=jws_registry(alg)))


def assertion(key: Any, alg: str, client_id: str, **changes: Any) -> str:
    return sign(key, alg, claims_for(client_id, **changes))


def hs_assertion(secret: str, client_id: str, alg: str = "HS256", **changes: Any) -> str:
    key = OctKey.import_key(secret.encode())
    return sign(key, alg, claims_for(client_id, **changes), kid=None)


def raw_jws(header: dict[str, Any], claims: dict[str, Any], mac_key: bytes | None) -> str:
    """A compact JWS made by hand (for algorithm-confusion attempts joserfc would not sign)."""
    signing_input = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
    signature = (
        b64url(hmac.new(mac_key, signing_input.encode(), hashlib.sha256).digest())
        if mac_key is not None
        else ""
    )
    return f"{signing_input}.{signature}"


def with_assertion(
    server: InProcessServer,
    token: str,
    path: str = "/token",
    *,
    extra: tuple[tuple[str, str], ...] = (),
    client_id: str | None = None,
    basic: tuple[str, str] | None = None,
    assertion_type: str = JWT_BEARER,
    address: str = ADDRESS,
) -> httpx.Response:
    params: list[tuple[str, str]] = []
    if path == "/token":
        params.append(("grant_type", "client_credentials"))
    params += [("client_assertion_type", assertion_type), ("client_assertion", token)]
    if client_id is not None:
        params.append(("client_id", client_id))
    params += list(extra)
    return server.form(path, params, basic=basic, address=address)


def assert_token(response: httpx.Response, client_id: str) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body = response.json()
    assert jose_part(body["access_token"], 1)["client_id"] == client_id
    return dict(body)


def refused(response: httpx.Response, error: str = "invalid_client") -> str:
    """The error_description of a refusal with ``error`` (400: no Basic was tried)."""
    body = assert_oauth_error(response, error, 400)
    return str(body.get("error_description", ""))


GENERIC = "client authentication failed"


# -- private_key_jwt: what works ------------------------------------------------------------


@pytest.mark.parametrize(
    ("key_name", "alg"),
    [
        ("ES256", "ES256"),
        ("ES384", "ES384"),
        ("EdDSA", "EdDSA"),
        ("EdDSA", "Ed25519"),
        ("RS256", "RS256"),
        ("RS256", "PS256"),
        ("RS256", "RS512"),
    ],
)
def test_private_key_jwt_with_each_key_type(
    shared_server: InProcessServer, key_name: str, alg: str
) -> None:
    client_id = add_key_client(shared_server, KEYS[key_name])
    response = with_assertion(shared_server, assertion(KEYS[key_name], alg, client_id))
    body = assert_token(response, client_id)
    assert body["scope"] == "read write"


def test_token_endpoint_url_is_accepted_as_audience_for_compatibility(
    shared_server: InProcessServer,
) -> None:
    key = KEYS["ES256"]
    client_id = add_key_client(shared_server, key)
    for aud in (ISSUER, TOKEN_ENDPOINT, [ISSUER], [TOKEN_ENDPOINT]):
        assert_token(
            with_assertion(shared_server, assertion(key, "ES256", client_id, aud=aud)), client_id
        )


@pytest.mark.parametrize(
    "aud",
    [
        "https://other-as.example.test",
        ISSUER + "/",
        f"{ISSUER}/introspect",
        "https://AS.example.test",
        [ISSUER, "https://other-as.example.test"],
        [ISSUER, ISSUER],
        [],
        None,
        42,
        {"aud": ISSUER},
    ],
)
def test_wrong_audience_is_refused(shared_server: InProcessServer, aud: Any) -> None:
    key = KEYS["ES256"]
    client_id = add_key_client(shared_server, key)
    description = refused(
        with_assertion(shared_server, assertion(key, "ES256", client_id, aud=aud))
    )
    assert "aud" in description and ISSUER in description


def test_body_client_id_matching_the_assertion_is_fine(shared_server: InProcessServer) -> None:
    key = KEYS["EdDSA"]
    client_id = add_key_client(shared_server, key)
    token = assertion(key, "EdDSA", client_id)
    assert_token(with_assertion(shared_server, token, client_id=client_id), client_id)


def test_assertion_without_kid_finds_the_key_by_algorithm(shared_server: InProcessServer) -> None:
    client_id = add_key_client(shared_server, KEYS["ES256"], KEYS["RS256"], KEYS["EdDSA"])
    for key, alg in ((KEYS["ES256"], "ES256"), (KEYS["RS256"], "PS384"), (KEYS["EdDSA"], "EdDSA")):
        token = sign(key, alg, claims_for(client_id), kid=None)
        assert_token(with_assertion(shared_server, token), client_id)


def test_scope_and_resource_work_as_with_secrets(shared_server: InProcessServer) -> None:
    key = KEYS["ES256"]
    client_id = add_key_client(shared_server, key)
    response = with_assertion(
        shared_server,
        assertion(key, "ES256", client_id),
        extra=(("scope", "read"), ("resource", API)),
    )
    body = assert_token(response, client_id)
    assert body["scope"] == "read"
    assert jose_part(body["access_token"], 1)["aud"] == API
    refused_scope = with_assertion(
        shared_server, assertion(key, "ES256", client_id), extra=(("scope", "admin"),)
    )
    assert_oauth_error(refused_scope, "invalid_scope", 400)


def test_exp_within_the_leeway_is_accepted(shared_server: InProcessServer) -> None:
    # Clock skew: 5 s past exp is well within the default 30 s leeway.
    key = KEYS["ES256"]
    client_id = add_key_client(shared_server, key)
    token = assertion(key, "ES256", client_id, exp=int(time.time()) - 5)
    assert_token(with_assertion(shared_server, token), client_id)


def test_a_longer_assertion_lifetime_can_be_allowed(make_server: MakeServer) -> None:
    server = make_server(assertion_max_lifetime=7200)
    key = KEYS["ES256"]
    client_id = add_key_client(server, key)
    token = assertion(key, "ES256", client_id, exp=int(time.time()) + 3600)
    assert_token(with_assertion(server, token), client_id)


# -- replay -------------------------------------------------------------------------------


def test_an_assertion_is_good_once(shared_server: InProcessServer) -> None:
    key = KEYS["ES256"]
    client_id = add_key_client(shared_server, key)
    token = assertion(key, "ES256", client_id)
    assert_token(with_assertion(shared_server, token), client_id)
    description = refused(with_assertion(shared_server, token))
    assert "already used" in description
    # On the other endpoints too: a jti is spent for this server, not per endpoint.
    assert "already used" in refused(
        with_assertion(shared_server, token, "/introspect", extra=(("token", "x"),))
    )
    # A fresh assertion (a new jti) works.
    assert_token(with_assertion(shared_server, assertion(key, "ES256", client_id)), client_id)


def test_the_same_jti_for_two_clients_is_no_replay(shared_server: InProcessServer) -> None:
    key = KEYS["ES256"]
    first, second = add_key_client(shared_server, key), add_key_client(shared_server, key)
    jti = secrets.token_urlsafe(16)
    for client_id in (first, second):
        token = assertion(key, "ES256", client_id, jti=jti)
        assert_token(with_assertion(shared_server, token), client_id)


@pytest.mark.parametrize("jti", ["\ud800", "a\udfffb", "\udbff\udbff"])
def test_a_signed_assertion_whose_jti_holds_a_lone_surrogate_is_invalid_client(
    shared_server: InProcessServer, jti: str
) -> None:
    """Correctly signed, but no UTF-8 can hold its jti (it would fail at the insert): refused
    as a malformed assertion, never a 500, and the client's next real assertion works."""
    key = KEYS["ES256"]
    client_id = add_key_client(shared_server, key)
    # Signed by hand: joserfc would encode the claims as UTF-8, which cannot hold them.
    payload = json.dumps(claims_for(client_id, jti=jti)).encode("ascii")
    token = jws.serialize_compact({"alg": "ES256", "kid": key.kid}, payload, key)
    assert "\\ud" in base64.urlsafe_b64decode(token.split(".")[1] + "==").decode().lower()
    for path in ("/token", "/introspect"):
        refused(
            with_assertion(shared_server, token, path, extra=(("token", "x"),) * (path != "/token"))
        )
    assert_token(with_assertion(shared_server, assertion(key, "ES256", client_id)), client_id)


def test_a_refused_assertion_does_not_spend_its_jti(shared_server: InProcessServer) -> None:
    key = KEYS["ES256"]
    client_id = add_key_client(shared_server, key)
    jti = secrets.token_urlsafe(16)
    forged = assertion(OTHER_EC, "ES256", client_id, jti=jti)
    assert refused(with_assertion(shared_server, forged)) == GENERIC
    assert_token(
        with_assertion(shared_server, assertion(key, "ES256", client_id, jti=jti)), client_id
    )


def test_replay_is_recorded_in_the_store_until_exp_plus_leeway(server: InProcessServer) -> None:
    key = KEYS["ES256"]
    client_id = add_key_client(server, key)
    exp = int(time.time()) + 120
    jti = "a-jti-" + secrets.token_hex(4)
    assert_token(
        with_assertion(server, assertion(key, "ES256", client_id, exp=exp, jti=jti)), client_id
    )
    with sqlite3.connect(server.db_path) as connection:
        rows = connection.execute(
            "SELECT client_id, jti, expires_at FROM used_assertions"
        ).fetchall()
    connection.close()
    assert [(r[0], r[1]) for r in rows] == [(client_id, jti)]
    remembered = datetime.fromisoformat(rows[0][2]).replace(tzinfo=timezone.utc)
    assert remembered.timestamp() == exp + server.settings.assertion_leeway


def test_concurrent_replays_let_exactly_one_through(server: InProcessServer) -> None:
    key = KEYS["ES256"]
    client_id = add_key_client(server, key)
    token = assertion(key, "ES256", client_id)
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda _: with_assertion(server, token).status_code, range(8)))
    assert sorted(statuses) == [200] + [400] * 7


def test_replay_across_two_instances_sharing_one_store(
    make_server: MakeServer, tmp_path: Path
) -> None:
    db = f"sqlite:///{tmp_path}/shared.db"
    a, b = make_server(db=db), make_server(db=db)
    key = KEYS["EdDSA"]
    client_id = add_key_client(a, key)
    token = assertion(key, "EdDSA", client_id)
    assert_token(with_assertion(a, token), client_id)
    assert "already used" in refused(with_assertion(b, token))
    assert_token(with_assertion(b, assertion(key, "EdDSA", client_id)), client_id)


def test_replay_with_redis_uses_set_nx_under_the_client_namespace(
    make_server: MakeServer, redis_url: str
) -> None:
    server = make_server(redis=redis_url)
    key = KEYS["ES256"]
    client_id = add_key_client(server, key)
    exp = int(time.time()) + 60
    jti = secrets.token_urlsafe(12)
    token = assertion(key, "ES256", client_id, exp=exp, jti=jti)
    assert_token(with_assertion(server, token), client_id)
    direct = redis_py.Redis.from_url(redis_url)
    try:
        name = f"authkestra:jti:{client_id}:{jti}"
        assert direct.exists(name) == 1
        ttl_ms = direct.pttl(name)
        assert 0 < ttl_ms <= (60 + server.settings.assertion_leeway + 1) * 1000
    finally:
        direct.close()
    assert "already used" in refused(with_assertion(server, token))
    # Redis keeps them: nothing in the store's table.
    assert server.ctx.store.purge_used_assertions() == 0
    with sqlite3.connect(server.db_path) as connection:
        assert connection.execute("SELECT count(*) FROM used_assertions").fetchone() == (0,)
    connection.close()


def test_concurrent_replays_with_redis_let_exactly_one_through(
    make_server: MakeServer, redis_url: str
) -> None:
    server = make_server(redis=redis_url)
    key = KEYS["ES256"]
    client_id = add_key_client(server, key)
    token = assertion(key, "ES256", client_id)
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda _: with_assertion(server, token).status_code, range(8)))
    assert sorted(statuses) == [200] + [400] * 7


def test_store_use_assertion_and_purge(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path}/a.db")
    store.migrate()
    later = datetime.now(timezone.utc) + timedelta(minutes=5)
    past = datetime.now(timezone.utc) - timedelta(minutes=5)
    assert store.use_assertion("svc", "j1", later) is True
    assert store.use_assertion("svc", "j1", later) is False
    assert store.use_assertion("other", "j1", later) is True
    assert store.use_assertion("svc", "old", past) is True
    # An expired row no longer counts (its assertion could not be accepted any more).
    assert store.use_assertion("svc", "old", later) is True
    assert store.use_assertion("svc", "old", later) is False
    assert store.use_assertion("svc", "gone", past) is True
    assert store.purge_used_assertions() == 1
    assert store.use_assertion("svc", "j1", later) is False
    store.close()


# -- refusals: whose assertion ----------------------------------------------------------------


def test_client_id_parameter_for_another_client_is_invalid_client(
    shared_server: InProcessServer,
) -> None:
    key = KEYS["ES256"]
    mine, other = add_key_client(shared_server, key), add_key_client(shared_server, key)
    description = refused(
        with_assertion(shared_server, assertion(key, "ES256", mine), client_id=other)
    )
    assert "another client" in description


@pytest.mark.parametrize(
    "changes",
    [
        {"sub": "someone-else"},
        {"iss": "someone-else"},
        {"sub": None},
        {"iss": None},
        {"iss": 7, "sub": 7},
        {"iss": "", "sub": ""},
    ],
)
def test_iss_and_sub_must_both_be_the_client(
    shared_server: InProcessServer, changes: dict[str, Any]
) -> None:
    key = KEYS["ES256"]
    client_id = add_key_client(shared_server, key)
    description = refused(
        with_assertion(shared_server, assertion(key, "ES256", client_id, **changes))
    )
    assert "iss and sub" in description


def test_an_assertion_naming_another_client_fails_its_signature(
    shared_server: InProcessServer,
) -> None:
    # Client A signs an assertion claiming to be client B: B's keys do not verify it.
    mine = add_key_client(shared_server, KEYS["ES256"])
    victim = add_key_client(shared_server, OTHER_EC)
    assert mine
    forged = assertion(KEYS["ES256"], "ES256", victim)
    assert refused(with_assertion(shared_server, forged)) == GENERIC


def test_unknown_and_disabled_clients_get_the_generic_refusal(
    shared_server: InProcessServer,
) -> None:
    key = KEYS["ES256"]
    assert refused(with_assertion(shared_server, assertion(key, "ES256", "nobody-here"))) == GENERIC
    client_id = add_key_client(shared_server, key)
    shared_server.ctx.store.set_enabled(client_id, False)
    assert refused(with_assertion(shared_server, assertion(key, "ES256", client_id))) == GENERIC


def test_a_secret_client_cannot_use_an_assertion(shared_server: InProcessServer) -> None:
    client_id, secret = shared_server.add_client()
    for token in (
        hs_assertion(secret, client_id),
        assertion(KEYS["ES256"], "ES256", client_id),
    ):
        assert refused(with_assertion(shared_server, token)) == GENERIC


def test_a_key_client_cannot_use_basic_or_a_secret(shared_server: InProcessServer) -> None:
    client_id = add_key_client(shared_server, KEYS["ES256"])
    assert_oauth_error(shared_server.token((client_id, "anything-at-all")), "invalid_client", 401)
    assert_oauth_error(shared_server.token((client_id, "")), "invalid_client", 401)
    response = shared_server.form(
        "/token", {"grant_type": "client_credentials", "client_id": client_id}
    )
    assert_oauth_error(response, "invalid_client", 400)


# -- refusals: time ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"exp": -3600}, "expired"),
        ({"exp": -31}, "expired"),
        ({"exp": 3600}, "more than 300 s ahead"),
        ({"exp": 400}, "more than 300 s ahead"),
        ({"nbf": 3600}, "not valid yet (nbf)"),
        ({"iat": 3600}, "issued in the future (iat)"),
    ],
)
def test_expired_or_too_distant_or_not_yet_valid_is_refused(
    shared_server: InProcessServer, changes: dict[str, int], words: str
) -> None:
    key = KEYS["ES256"]
    client_id = add_key_client(shared_server, key)
    now = int(time.time())
    shifted = {name: now + delta for name, delta in changes.items()}
    description = refused(
        with_assertion(shared_server, assertion(key, "ES256", client_id, **shifted))
    )
    assert words in description


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"exp": None}, "no exp"),
        ({"exp": "9999999999"}, "exp claim is not a number"),
        ({"exp": True}, "exp claim is not a number"),
        ({"exp": 10**400}, "exp claim is out of range"),
        ({"nbf": "soon"}, "nbf claim is not a number"),
        ({"jti": None}, "jti"),
        ({"jti": ""}, "jti"),
        ({"jti": 12345}, "jti"),
        ({"jti": "j" * 257}, "jti"),
    ],
)
def test_missing_or_malformed_claims_are_refused(
    shared_server: InProcessServer, changes: dict[str, Any], words: str
) -> None:
    key = KEYS["ES256"]
    client_id = add_key_client(shared_server, key)
    description = refused(
        with_assertion(shared_server, assertion(key, "ES256", client_id, **changes))
    )
    assert words in description


# -- refusals: keys and algorithms -------------------------------------------------------------


def test_hs256_with_the_public_key_as_secret_is_refused(shared_server: InProcessServer) -> None:
    """The classic confusion: HMAC keyed with the public key the server holds."""
    key = KEYS["RS256"]
    client_id = add_key_client(shared_server, key)
    claims = claims_for(client_id)
    public_pem = key.as_pem(private=False)
    public_json = json.dumps(public_jwk(key)).encode()
    for mac_key in (public_pem, public_json, b""):
        token = raw_jws({"alg": "HS256", "kid": key.kid, "typ": "JWT"}, claims, mac_key)
        assert refused(with_assertion(shared_server, token)) == GENERIC


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_alg_none_is_refused(shared_server: InProcessServer, alg: str) -> None:
    client_id = add_key_client(shared_server, KEYS["ES256"])
    token = raw_jws({"alg": alg, "kid": "es256-1"}, claims_for(client_id), None) + "c2ln"
    assert "must be signed" in refused(with_assertion(shared_server, token))
    unsigned = raw_jws({"alg": alg}, claims_for(client_id), None)  # empty signature
    refused(with_assertion(shared_server, unsigned))


def test_an_algorithm_the_key_does_not_verify_is_refused(shared_server: InProcessServer) -> None:
    ec, rsa = KEYS["ES256"], KEYS["RS256"]
    ec_client = add_key_client(shared_server, ec)
    rsa_client = add_key_client(shared_server, rsa)
    attempts = [
        # RSA-signed, header says RS256, but the kid names the EC key.
        sign(rsa, "RS256", claims_for(ec_client), kid=ec.kid),
        # EC-signed with a header naming another curve's algorithm.
        raw_jws({"alg": "ES384", "kid": ec.kid}, claims_for(ec_client), None) + "AAAA",
        # A genuine ES256 signature, for a client whose only key is RSA.
        sign(ec, "ES256", claims_for(rsa_client), kid=rsa.kid),
        # An algorithm nobody verifies here.
        raw_jws({"alg": "ES256K", "kid": ec.kid}, claims_for(ec_client), None) + "AAAA",
    ]
    for token in attempts:
        assert refused(with_assertion(shared_server, token)) == GENERIC


def test_a_jwk_alg_narrows_what_its_key_verifies(shared_server: InProcessServer) -> None:
    rsa = KEYS["RS256"]
    client_id = add_key_client(
        shared_server, jwks=json.dumps({"keys": [public_jwk(rsa, alg="PS256")]})
    )
    assert refused(with_assertion(shared_server, assertion(rsa, "RS256", client_id))) == GENERIC
    assert_token(with_assertion(shared_server, assertion(rsa, "PS256", client_id)), client_id)


def test_unknown_kid_and_wrong_key_are_refused(shared_server: InProcessServer) -> None:
    key = KEYS["ES256"]
    client_id = add_key_client(shared_server, key)
    unknown_kid = sign(key, "ES256", claims_for(client_id), kid="not-a-kid-of-theirs")
    assert refused(with_assertion(shared_server, unknown_kid)) == GENERIC
    wrong_key = assertion(OTHER_EC, "ES256", client_id)  # same kid, another key
    assert refused(with_assertion(shared_server, wrong_key)) == GENERIC
    numeric_kid = raw_jws({"alg": "ES256", "kid": 5}, claims_for(client_id), None) + "AAAA"
    assert refused(with_assertion(shared_server, numeric_kid)) == GENERIC


def test_a_tampered_assertion_is_refused(shared_server: InProcessServer) -> None:
    key = KEYS["ES256"]
    client_id = add_key_client(shared_server, key)
    header, _, signature = assertion(key, "ES256", client_id).split(".")
    other_claims = b64url(json.dumps(claims_for(client_id)).encode())
    assert refused(with_assertion(shared_server, f"{header}.{other_claims}.{signature}")) == GENERIC
    flipped = signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")
    token = assertion(key, "ES256", client_id)
    assert (
        refused(with_assertion(shared_server, token.rsplit(".", 1)[0] + "." + flipped)) == GENERIC
    )


@pytest.mark.parametrize(
    ("header", "words"),
    [
        ({"typ": "at+jwt"}, "typ"),
        ({"typ": "JWS"}, "typ"),
        ({"crit": ["b64"], "b64": False}, "critical"),
    ],
)
def test_header_typ_and_crit(
    shared_server: InProcessServer, header: dict[str, Any], words: str
) -> None:
    key = KEYS["ES256"]
    client_id = add_key_client(shared_server, key)
    # Signed by hand: joserfc would not sign these headers (the check comes before the key).
    full = {"alg": "ES256", "kid": key.kid, **header}
    token = raw_jws(full, claims_for(client_id), None) + "c2ln"
    assert words in refused(with_assertion(shared_server, token))


@pytest.mark.parametrize("typ", ["JWT", "jwt", "client-authentication+jwt", "application/jwt"])
def test_header_typ_values_that_are_fine(shared_server: InProcessServer, typ: str) -> None:
    key = KEYS["ES256"]
    client_id = add_key_client(shared_server, key)
    token = sign(key, "ES256", claims_for(client_id), typ=typ)
    assert_token(with_assertion(shared_server, token), client_id)


# -- refusals: the request ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "token",
    [
        "not-a-jwt",
        "a.b",
        "a.b.c.d",
        "!!!.???.***",
        b64url(b"[1]") + "." + b64url(b"{}") + ".c2ln",
        b64url(b'{"alg":"ES256"}') + "." + b64url(b'"claims"') + ".c2ln",
        b64url(b'{"alg":"ES256"}') + "." + b64url(b"{not json") + ".c2ln",
        b64url(b'{"alg":"ES256"}') + "." + b64url(b'{"iss":"x","sub":"x"}') + ".",
        b64url(b'{"alg":"ES256"}') + "." + b64url(b'{"iss":"x","sub":"x"}') + ".c2ln" + "A" * 9000,
        b64url(b'{"alg":"ES256"}') + ".\u00e9\u00e9.c2ln",
        b64url(b"\xff\xfe") + "." + b64url(b"{}") + ".c2ln",
    ],
)
def test_malformed_assertions_are_invalid_client(
    shared_server: InProcessServer, token: str
) -> None:
    refused(with_assertion(shared_server, token))


def test_wrong_assertion_type_is_invalid_client(shared_server: InProcessServer) -> None:
    key = KEYS["ES256"]
    client_id = add_key_client(shared_server, key)
    for kind in ("urn:ietf:params:oauth:client-assertion-type:saml2-bearer", "jwt", "x"):
        response = with_assertion(
            shared_server, assertion(key, "ES256", client_id), assertion_type=kind
        )
        assert "client_assertion_type" in refused(response)


def test_an_assertion_with_a_secret_at_once_is_invalid_request(
    shared_server: InProcessServer,
) -> None:
    key = KEYS["ES256"]
    client_id = add_key_client(shared_server, key)
    with_basic = with_assertion(
        shared_server, assertion(key, "ES256", client_id), basic=(client_id, "a-secret")
    )
    assert_oauth_error(with_basic, "invalid_request", 400)
    with_post = with_assertion(
        shared_server, assertion(key, "ES256", client_id), extra=(("client_secret", "s"),)
    )
    assert_oauth_error(with_post, "invalid_request", 400)


def test_half_an_assertion_or_a_repeated_one_is_invalid_request(
    shared_server: InProcessServer,
) -> None:
    key = KEYS["ES256"]
    client_id = add_key_client(shared_server, key)
    token = assertion(key, "ES256", client_id)
    for params in (
        [("client_assertion", token)],
        [("client_assertion_type", JWT_BEARER)],
        [
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", token),
            ("client_assertion", token),
        ],
        [
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", token),
        ],
    ):
        response = shared_server.form("/token", [("grant_type", "client_credentials"), *params])
        assert_oauth_error(response, "invalid_request", 400)


def test_failed_assertions_count_towards_the_rate_limit(make_server: MakeServer) -> None:
    server = make_server(max_failures_per_address=2)
    key = KEYS["ES256"]
    client_id = add_key_client(server, key)
    for _ in range(3):
        refused(with_assertion(server, assertion(OTHER_EC, "ES256", client_id)))
    throttled = with_assertion(server, assertion(key, "ES256", client_id))
    assert_oauth_error(throttled, "temporarily_unavailable", 429)
    # From another address, the client's own assertion is not refused.
    other = with_assertion(server, assertion(key, "ES256", client_id), address="192.0.2.7")
    assert_token(other, client_id)


# -- client_secret_jwt ---------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
def test_client_secret_jwt(shared_server: InProcessServer, alg: str) -> None:
    client_id, secret = add_secret_jwt_client(shared_server)
    assert_token(with_assertion(shared_server, hs_assertion(secret, client_id, alg)), client_id)


def test_client_secret_jwt_refusals(shared_server: InProcessServer) -> None:
    client_id, secret = add_secret_jwt_client(shared_server)
    other_id, other_secret = add_secret_jwt_client(shared_server)
    assert other_id
    attempts = [
        hs_assertion(other_secret, client_id),  # another client's secret
        hs_assertion(secret + "x", client_id),
        assertion(KEYS["ES256"], "ES256", client_id),  # an asymmetric alg for an HS client
        # HS256 keyed with the secret's keyed hash (what the store holds), not the secret.
        hs_assertion(shared_server.ctx.hasher.hash(secret), client_id),
    ]
    for token in attempts:
        assert refused(with_assertion(shared_server, token)) == GENERIC
    # And its secret is no Basic or post password: the client is bound to client_secret_jwt.
    assert_oauth_error(shared_server.token((client_id, secret)), "invalid_client", 401)
    assert_oauth_error(shared_server.token((client_id, secret), post=True), "invalid_client", 400)
    token = hs_assertion(secret, client_id)
    assert_token(with_assertion(shared_server, token), client_id)
    assert "already used" in refused(with_assertion(shared_server, token))


def test_client_secret_jwt_secret_is_stored_encrypted_only(server: InProcessServer) -> None:
    client_id, secret = add_secret_jwt_client(server)
    joined = "\n".join(all_rows(server.db_path))
    assert secret not in joined
    assert base64.urlsafe_b64encode(secret.encode()).decode().rstrip("=") not in joined
    record = server.ctx.store.get_client(client_id)
    (stored,) = record.secrets
    assert stored.encrypted is not None and stored.encrypted.startswith("v1.")
    assert stored.encrypted not in repr(record) and stored.encrypted not in repr(stored)
    # Bound to its client: the same ciphertext under another client id does not open.
    box = secret_box_for(server.settings, server.ctx.store)
    assert box.decrypt(stored.encrypted, client_id) == secret
    assert box.decrypt(stored.encrypted, client_id + "x") is None


def test_secret_box() -> None:
    box = SecretBox(b"k" * 32)
    sealed = box.encrypt("s3cret", "svc")
    assert sealed != box.encrypt("s3cret", "svc")  # a new nonce each time
    assert box.decrypt(sealed, "svc") == "s3cret"
    assert box.decrypt(sealed, "other") is None
    assert SecretBox(b"j" * 32).decrypt(sealed, "svc") is None
    tampered = sealed[:-4] + ("AAAA" if not sealed.endswith("AAAA") else "BBBB")
    assert box.decrypt(tampered, "svc") is None
    for garbage in ("", "v1.", "v1.!!!", "v2." + sealed[3:], "v1.AAAA"):
        assert box.decrypt(garbage, "svc") is None
    assert "k" * 8 not in repr(box)
    with pytest.raises(ValueError, match="16 bytes"):
        SecretBox(b"short")


# -- introspection and revocation -------------------------------------------------------------------


def test_assertion_clients_introspect_and_revoke(shared_server: InProcessServer) -> None:
    key = KEYS["ES256"]
    client_id = add_key_client(shared_server, key)
    hs_id, hs_secret = add_secret_jwt_client(shared_server)
    access = assert_token(
        with_assertion(shared_server, assertion(key, "ES256", client_id)), client_id
    )["access_token"]
    answer = with_assertion(
        shared_server, hs_assertion(hs_secret, hs_id), "/introspect", extra=(("token", access),)
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["active"] is True
    assert answer.json()["client_id"] == client_id
    revoked = with_assertion(
        shared_server, assertion(key, "ES256", client_id), "/revoke", extra=(("token", access),)
    )
    assert revoked.status_code == 200, revoked.text
    again = with_assertion(
        shared_server, assertion(key, "ES256", client_id), "/introspect", extra=(("token", access),)
    )
    assert again.json() == {"active": False}
    bad = with_assertion(
        shared_server,
        assertion(OTHER_EC, "ES256", client_id),
        "/introspect",
        extra=(("token", access),),
    )
    assert refused(bad) == GENERIC


# -- the token endpoint's thread path and the metadata ------------------------------------------------


def test_assertion_requests_always_take_the_worker_thread(shared_server: InProcessServer) -> None:
    key = KEYS["ES256"]
    client_id = add_key_client(shared_server, key)
    params = {
        "grant_type": ["client_credentials"],
        "client_assertion_type": [JWT_BEARER],
        "client_assertion": [assertion(key, "ES256", client_id)],
    }
    assert client_credentials(None, params).assertion is not None
    in_memory, _credentials = _in_memory(shared_server.ctx, None, params)
    assert in_memory is False


def test_metadata_lists_the_key_methods_and_algorithms(shared_server: InProcessServer) -> None:
    metadata = shared_server.get("/.well-known/oauth-authorization-server").json()
    for endpoint in ("token", "introspection", "revocation"):
        methods = metadata[f"{endpoint}_endpoint_auth_methods_supported"]
        assert {"private_key_jwt", "client_secret_jwt"} <= set(methods)
        algs = metadata[f"{endpoint}_endpoint_auth_signing_alg_values_supported"]
        assert {"ES256", "EdDSA", "RS256", "PS256", "HS256"} <= set(algs)
        assert "none" not in algs


# -- registering keys ---------------------------------------------------------------------------


def test_normalize_jwks_checks_each_key_and_adds_missing_kids() -> None:
    key = KEYS["ES256"]
    no_kid = {k: v for k, v in key.as_dict(private=False).items() if k != "kid"}
    stored, kids = normalize_jwks(json.dumps(no_kid))  # a single JWK is a set of one
    assert kids == [key.thumbprint()]
    assert json.loads(stored)["keys"][0]["kid"] == key.thumbprint()
    stored, kids = normalize_jwks(key.as_pem(private=False).decode())
    assert kids == [key.thumbprint()]
    _, kids = normalize_jwks(jwks_of(KEYS["ES256"], KEYS["RS256"], KEYS["EdDSA"]))
    assert kids == ["es256-1", "rsa-1", "ed-1"]


@pytest.mark.parametrize(
    ("document", "words"),
    [
        ({"keys": [KEYS["ES256"].as_dict(private=True)]}, "private"),
        ({"keys": [OctKey.generate_key(256).as_dict()]}, "private or symmetric"),
        ({"keys": [SMALL_RSA_JWK]}, "2048"),
        ({"keys": [public_jwk(KEYS["ES256"], use="enc")]}, "use"),
        ({"keys": [public_jwk(KEYS["ES256"], alg="RS256")]}, "alg"),
        ({"keys": [public_jwk(KEYS["ES256"], key_ops=["encrypt"])]}, "key_ops"),
        ({"keys": [public_jwk(KEYS["ES256"]), public_jwk(OTHER_EC)]}, "share a kid"),
        ({"keys": []}, "1 to 20"),
        ({"keys": [public_jwk(KEYS["ES256"])] * 21}, "1 to 20"),
        ({"nokeys": []}, "JWK Set"),
        ({"keys": [{"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}]}, "could not be read"),
        ({"keys": [OKPKey.generate_key("X25519").as_dict(private=False)]}, "curve"),
        ({"keys": ["a string"]}, "JSON object"),
    ],
)
def test_normalize_jwks_refuses(document: Any, words: str) -> None:
    with pytest.raises(InvalidJwks, match=words):
        normalize_jwks(json.dumps(document))


def test_normalize_jwks_refuses_non_json_and_private_pem() -> None:
    with pytest.raises(InvalidJwks, match="not JSON"):
        normalize_jwks("garbage")
    with pytest.raises(InvalidJwks, match="private key"):
        normalize_jwks(KEYS["ES256"].as_pem(private=True).decode())


def test_lenient_parse_skips_keys_it_cannot_use() -> None:
    document = {
        "keys": [
            {"kty": "EC", "crv": "P-256", "use": "enc", "x": "AA", "y": "AA"},
            {"kty": "oct", "k": "AAAA"},
            public_jwk(KEYS["ES256"]),
        ]
    }
    (only,) = parse_jwks(document, strict=False)
    assert only.kid == "es256-1"
    with pytest.raises(InvalidJwks):
        parse_jwks(document, strict=True)
    with pytest.raises(InvalidJwks, match="no public signing key"):
        parse_jwks({"keys": [{"kty": "oct", "k": "AAAA"}]}, strict=False)


# -- jwks_uri: fetched under SSRF rules -----------------------------------------------------------


class JwksHost:
    """A small HTTP server on loopback that serves whatever ``body`` is (and records requests)."""

    def __init__(self) -> None:
        self.body: bytes = b'{"keys": []}'
        self.status = 200
        self.headers: dict[str, str] = {"Content-Type": "application/json"}
        self.hang = False
        self.released = threading.Event()
        self.requests: list[dict[str, str]] = []
        host = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                host.requests.append({"path": self.path, **dict(self.headers)})
                if host.hang:
                    host.released.wait(timeout=30)  # answer nothing until stop()
                    return
                self.send_response(host.status)
                for name, value in host.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(host.body)))
                self.end_headers()
                self.wfile.write(host.body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str = "/jwks.json", host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def serve(self, *keys: Any) -> None:
        self.body = jwks_of(*keys).encode()

    def stop(self) -> None:
        self.released.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def jwks_host() -> Iterator[JwksHost]:
    host = JwksHost()
    yield host
    host.stop()


def test_client_with_a_jwks_uri(make_server: MakeServer, jwks_host: JwksHost) -> None:
    server = make_server(allow_insecure_jwks_uri=True)
    key = KEYS["ES256"]
    jwks_host.serve(key, KEYS["RS256"])
    client_id = add_key_client(server, jwks_uri=jwks_host.url())
    for _ in range(3):
        assert_token(with_assertion(server, assertion(key, "ES256", client_id)), client_id)
    assert len(jwks_host.requests) == 1  # cached for the client
    assert jwks_host.requests[0]["Host"] == f"127.0.0.1:{jwks_host.port}"
    assert refused(with_assertion(server, assertion(OTHER_EC, "ES256", client_id))) == GENERIC


def test_jwks_uri_host_name_is_kept_in_the_host_header(
    make_server: MakeServer, jwks_host: JwksHost
) -> None:
    server = make_server(allow_insecure_jwks_uri=True)
    jwks_host.serve(KEYS["EdDSA"])
    client_id = add_key_client(server, jwks_uri=jwks_host.url(host="localhost"))
    assert_token(with_assertion(server, assertion(KEYS["EdDSA"], "EdDSA", client_id)), client_id)
    assert jwks_host.requests[-1]["Host"] == f"localhost:{jwks_host.port}"


def test_rotated_keys_at_the_jwks_uri_are_fetched_for_an_unknown_kid(
    make_server: MakeServer, jwks_host: JwksHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jwks_uri_module, "MIN_REFETCH_INTERVAL", 0.0)
    server = make_server(allow_insecure_jwks_uri=True)
    old, new = KEYS["ES256"], ECKey.generate_key("P-256", {"kid": "es256-2"}, private=True)
    jwks_host.serve(old)
    client_id = add_key_client(server, jwks_uri=jwks_host.url())
    assert_token(with_assertion(server, assertion(old, "ES256", client_id)), client_id)
    jwks_host.serve(new)
    # A known kid is served from the cache (the old key still works a while) ...
    assert_token(with_assertion(server, assertion(old, "ES256", client_id)), client_id)
    assert len(jwks_host.requests) == 1
    # ... an unknown one makes the server look again.
    assert_token(with_assertion(server, assertion(new, "ES256", client_id)), client_id)
    assert len(jwks_host.requests) == 2
    assert refused(with_assertion(server, assertion(old, "ES256", client_id))) == GENERIC


@pytest.mark.parametrize(
    ("status", "body", "words"),
    [
        (200, b"not json", "not JSON"),
        (200, b"[1, 2]", "not a JWK Set"),
        (200, b'{"keys": "none"}', "JWK Set"),
        (404, b"{}", "HTTP 404"),
        (302, b"{}", "HTTP 302"),
        (200, b'{"keys": [], "pad": "' + b"x" * (70 * 1024) + b'"}', "exceeds"),
    ],
)
def test_jwks_uri_failures_refuse_the_client(
    make_server: MakeServer,
    jwks_host: JwksHost,
    status: int,
    body: bytes,
    words: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = make_server(allow_insecure_jwks_uri=True, jwks_uri_cache_seconds=0)
    jwks_host.status, jwks_host.body = status, body
    if status == 302:
        jwks_host.headers["Location"] = jwks_host.url("/elsewhere")
    client_id = add_key_client(server, jwks_uri=jwks_host.url())
    with caplog.at_level("WARNING", logger="authkestra.server"):
        response = with_assertion(server, assertion(KEYS["ES256"], "ES256", client_id))
    assert refused(response) == GENERIC
    assert words in caplog.text
    assert all(r["path"] == "/jwks.json" for r in jwks_host.requests)  # no redirect followed


def test_a_failing_jwks_uri_is_not_hammered(make_server: MakeServer, jwks_host: JwksHost) -> None:
    server = make_server(allow_insecure_jwks_uri=True, jwks_uri_cache_seconds=300)
    jwks_host.status = 500
    client_id = add_key_client(server, jwks_uri=jwks_host.url())
    for _ in range(3):
        refused(with_assertion(server, assertion(KEYS["ES256"], "ES256", client_id)))
    assert len(jwks_host.requests) == 1  # the failure is remembered a few seconds


def test_jwks_uri_on_loopback_is_refused_without_the_test_setting(
    make_server: MakeServer, jwks_host: JwksHost
) -> None:
    server = make_server()  # allow_insecure_jwks_uri off, as in production
    jwks_host.serve(KEYS["ES256"])
    client_id = add_key_client(server, jwks_uri=jwks_host.url())
    assert refused(with_assertion(server, assertion(KEYS["ES256"], "ES256", client_id))) == GENERIC
    assert jwks_host.requests == []  # refused before connecting


@pytest.mark.parametrize(
    "uri",
    [
        "http://keys.example.com/jwks.json",
        "ftp://keys.example.com/jwks.json",
        "file:///etc/passwd",
        "https://user:pw@keys.example.com/jwks.json",
        "https://keys.example.com/jwks.json#frag",
        "https:///jwks.json",
        "https://127.0.0.1/jwks.json",
        "https://10.1.2.3/jwks.json",
        "https://192.168.0.1/jwks.json",
        "https://172.16.0.1/jwks.json",
        "https://169.254.169.254/latest/meta-data",
        "https://100.64.0.1/jwks.json",
        "https://0.0.0.0/jwks.json",
        "https://224.0.0.1/jwks.json",
        "https://[::1]/jwks.json",
        "https://[fe80::1]/jwks.json",
        "https://[fc00::1]/jwks.json",
        "https://[::ffff:127.0.0.1]/jwks.json",
        "https://localhost/jwks.json",
        "https://keys.example.com:0/jwks.json",
        "https://keys.example.com/jwks .json",
        "https://k\u00e9ys.example.com/jwks.json",
        "https://" + "a" * 2050 + ".example.com/",
    ],
)
def test_jwks_uri_forms_refused(uri: str) -> None:
    with pytest.raises(JwksUriError):
        check_jwks_uri(uri)
    with pytest.raises(JwksUriError):
        fetch_jwks(uri, resolver=lambda *_: pytest.fail("resolved"))


def test_http_jwks_uri_only_on_loopback_and_only_with_the_test_setting() -> None:
    assert check_jwks_uri("http://127.0.0.1:8000/jwks.json", allow_insecure=True)
    assert check_jwks_uri("http://localhost:8000/jwks.json", allow_insecure=True)
    with pytest.raises(JwksUriError, match="https"):
        check_jwks_uri("http://keys.example.com/jwks.json", allow_insecure=True)
    with pytest.raises(JwksUriError, match="https"):
        check_jwks_uri("http://127.0.0.1:8000/jwks.json")
    assert check_jwks_uri("https://keys.example.com/jwks.json")


@pytest.mark.parametrize(
    "addresses",
    [
        ["127.0.0.1"],
        ["10.0.0.7"],
        ["93.184.216.34", "192.168.1.1"],  # one bad address is enough
        ["169.254.169.254"],
        ["::1"],
        ["::ffff:10.0.0.1"],
        ["fd00::5"],
        [],
    ],
)
def test_a_host_name_resolving_to_a_private_address_is_refused(addresses: list[str]) -> None:
    with pytest.raises(JwksUriError, match=r"resolve|loopback, private"):
        fetch_jwks("https://keys.example.com/jwks.json", resolver=lambda *_: addresses)


def test_an_http_jwks_uri_must_resolve_to_loopback() -> None:
    # "localhost" could be made to resolve elsewhere: the address decides, not the name.
    with pytest.raises(JwksUriError, match="loopback"):
        fetch_jwks(
            "http://localhost:9/jwks.json", allow_insecure=True, resolver=lambda *_: ["10.0.0.1"]
        )


def test_a_host_that_does_not_resolve_is_refused() -> None:
    def fail(*_: Any) -> list[str]:
        raise OSError("no such host")

    with pytest.raises(JwksUriError, match="does not resolve"):
        fetch_jwks("https://keys.example.com/jwks.json", resolver=fail)


def test_fetch_is_bounded_in_size(jwks_host: JwksHost) -> None:
    jwks_host.body = b" " * (64 * 1024) + b"{}"
    with pytest.raises(JwksUriError, match="exceeds"):
        fetch_jwks(jwks_host.url(), allow_insecure=True)
    jwks_host.body = b"{}" + b" " * (64 * 1024 - 2)
    assert fetch_jwks(jwks_host.url(), allow_insecure=True) == {}


def test_fetch_is_bounded_in_time(jwks_host: JwksHost) -> None:
    jwks_host.hang = True
    with pytest.raises(JwksUriError, match=r"ReadTimeout|took more"):
        fetch_jwks(jwks_host.url(), allow_insecure=True, timeout=0.5)


def test_fetch_ignores_proxy_settings(jwks_host: JwksHost, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://10.255.255.1:3128")
    monkeypatch.setenv("ALL_PROXY", "http://10.255.255.1:3128")
    jwks_host.serve(KEYS["ES256"])
    assert fetch_jwks(jwks_host.url(), allow_insecure=True)["keys"][0]["kid"] == "es256-1"


# -- the CLI ------------------------------------------------------------------------------------


def cli_json(*args: str) -> dict[str, Any]:
    code, out, err = run(*args, "--format", "json")
    assert code == 0, err
    document = json.loads(out)
    assert isinstance(document, dict)
    return document


def test_cli_creates_a_private_key_jwt_client_from_a_jwks_file(
    server: InProcessServer, tmp_path: Path
) -> None:
    path = tmp_path / "client.jwks.json"
    path.write_text(jwks_of(KEYS["ES256"], KEYS["RS256"]))
    document = cli_json(
        "clients", "create", "keyed", "--auth-method", "private_key_jwt", "--jwks", str(path),
        "--scope", "read", "--db", server.db,
    )  # fmt: skip
    assert document == {
        "client_id": "keyed",
        "auth_method": "private_key_jwt",
        "jwks_kids": ["es256-1", "rsa-1"],
    }
    assert_token(with_assertion(server, assertion(KEYS["RS256"], "RS256", "keyed")), "keyed")
    shown = cli_json("clients", "show", "keyed", "--db", server.db)
    assert shown["auth_method"] == "private_key_jwt"
    assert shown["jwks_kids"] == ["es256-1", "rsa-1"]
    assert "secrets" not in shown  # it has none
    code, out, _ = run("clients", "show", "keyed", "--db", server.db)
    assert code == 0
    assert "private_key_jwt" in out and "es256-1" in out
    # No secret exists, so none can be rotated; and no secret authenticates it.
    code, _, err = run("clients", "rotate-secret", "keyed", "--db", server.db)
    assert code == 2 and "set-keys" in err
    assert_oauth_error(server.token(("keyed", "")), "invalid_client", 401)


def test_cli_private_key_jwt_with_inline_jwks_or_pem_text_output(server: InProcessServer) -> None:
    code, out, err = run(
        "clients", "create", "inline", "--auth-method", "private_key_jwt",
        "--jwks", jwks_of(KEYS["EdDSA"]), "--db", server.db,
    )  # fmt: skip
    assert code == 0, err
    assert out == "client_id:     inline\nauth_method:   private_key_jwt\nkeys (kid):    ed-1\n"
    assert_token(with_assertion(server, assertion(KEYS["EdDSA"], "EdDSA", "inline")), "inline")
    pem = KEYS["ES256"].as_pem(private=False).decode()
    document = cli_json(
        "clients", "create", "from-pem", "--auth-method", "private_key_jwt", "--jwks", pem,
        "--db", server.db,
    )  # fmt: skip
    assert document["jwks_kids"] == [KEYS["ES256"].thumbprint()]
    token = sign(KEYS["ES256"], "ES256", claims_for("from-pem"), kid=None)
    assert_token(with_assertion(server, token), "from-pem")


def test_cli_private_key_jwt_with_a_jwks_uri(server: InProcessServer) -> None:
    document = cli_json(
        "clients", "create", "remote", "--auth-method", "private_key_jwt",
        "--jwks-uri", "https://keys.example.com/remote/jwks.json", "--db", server.db,
    )  # fmt: skip
    assert document == {
        "client_id": "remote",
        "auth_method": "private_key_jwt",
        "jwks_uri": "https://keys.example.com/remote/jwks.json",
    }
    shown = cli_json("clients", "show", "remote", "--db", server.db)
    assert shown["jwks_uri"] == "https://keys.example.com/remote/jwks.json"


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--auth-method", "private_key_jwt"], "--jwks or --jwks-uri"),
        (
            [
                "--auth-method",
                "private_key_jwt",
                "--jwks",
                "{}",
                "--jwks-uri",
                "https://k.example/j",
            ],
            "--jwks or --jwks-uri",
        ),
        (["--jwks", "{}"], "go with --auth-method private_key_jwt"),
        (["--auth-method", "client_secret_jwt", "--jwks-uri", "https://k.example/j"], "go with"),
        (["--auth-method", "private_key_jwt", "--jwks", "/no/such/file.json"], "cannot read"),
        (["--auth-method", "private_key_jwt", "--jwks", '{"keys": []}'], "1 to 20"),
        (
            [
                "--auth-method",
                "private_key_jwt",
                "--jwks",
                json.dumps(KEYS["ES256"].as_dict(private=True)),
            ],
            "private",
        ),
        (["--auth-method", "private_key_jwt", "--jwks-uri", "http://keys.example.com/j"], "https"),
        (["--auth-method", "private_key_jwt", "--jwks-uri", "https://10.0.0.1/j"], "private"),
        (["--auth-method", "private_key_jwt", "--jwks-uri", "https://localhost/j"], "loopback"),
    ],
)
def test_cli_refuses_bad_key_options(tmp_path: Path, args: list[str], words: str) -> None:
    db = made_store(tmp_path / "authkestra.db")
    code, out, err = run("clients", "create", "svc", *args, "--db", db)
    assert code == 2, err
    assert words in err
    assert out == ""
    assert run("clients", "show", "svc", "--db", db)[0] == 3  # nothing half-written


def test_cli_client_secret_jwt(server: InProcessServer) -> None:
    document = cli_json(
        "clients", "create", "hs", "--auth-method", "client_secret_jwt", "--db", server.db
    )
    secret = document["client_secret"]
    assert set(document) == {"client_id", "client_secret"}
    assert_token(with_assertion(server, hs_assertion(secret, "hs")), "hs")
    assert secret not in "\n".join(all_rows(server.db_path))
    assert (
        cli_json("clients", "show", "hs", "--db", server.db)["auth_method"] == "client_secret_jwt"
    )
    # Rotation: the new secret works at once, the old one through the grace period.
    new = cli_json("clients", "rotate-secret", "hs", "--db", server.db)["client_secret"]
    for current in (secret, new):
        assert_token(with_assertion(server, hs_assertion(current, "hs")), "hs")
    cli_json("clients", "rotate-secret", "hs", "--grace", "0", "--db", server.db)
    assert refused(with_assertion(server, hs_assertion(new, "hs"))) == GENERIC


def test_cli_set_keys_replaces_the_keys(server: InProcessServer) -> None:
    cli_json(
        "clients", "create", "rot", "--auth-method", "private_key_jwt",
        "--jwks", jwks_of(KEYS["ES256"]), "--db", server.db,
    )  # fmt: skip
    both = cli_json(
        "clients", "set-keys", "rot", "--jwks", jwks_of(KEYS["ES256"], KEYS["EdDSA"]),
        "--db", server.db,
    )  # fmt: skip
    assert both["jwks_kids"] == ["es256-1", "ed-1"]
    for key, alg in ((KEYS["ES256"], "ES256"), (KEYS["EdDSA"], "EdDSA")):
        assert_token(with_assertion(server, assertion(key, alg, "rot")), "rot")
    cli_json("clients", "set-keys", "rot", "--jwks", jwks_of(KEYS["EdDSA"]), "--db", server.db)
    assert refused(with_assertion(server, assertion(KEYS["ES256"], "ES256", "rot"))) == GENERIC
    assert_token(with_assertion(server, assertion(KEYS["EdDSA"], "EdDSA", "rot")), "rot")
    # Only for key clients; and unknown clients are an error.
    _, _ = cli_json("clients", "create", "plain", "--db", server.db), None
    code, _, err = run(
        "clients", "set-keys", "plain", "--jwks", jwks_of(KEYS["ES256"]), "--db", server.db
    )
    assert code == 2 and "no keys" in err
    code, _, err = run(
        "clients", "set-keys", "nobody", "--jwks", jwks_of(KEYS["ES256"]), "--db", server.db
    )
    assert code == 3 and "no client" in err


# -- the schema ---------------------------------------------------------------------------------


def test_a_0001_store_upgrades_to_0002_keeping_its_clients(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/old.db"
    store = Store(db)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with store.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")
    assert store.schema_version() == "0001"
    with store.engine.begin() as connection:
        connection.exec_driver_sql(
            "INSERT INTO clients (client_id, auth_method, scopes, audiences, enabled, created_at)"
            " VALUES ('old', 'client_secret_basic', 'read', '', 1, '2024-01-01 00:00:00')"
        )
    store.migrate()
    assert store.schema_version() == "0007"
    client = store.get_client("old")
    assert client.jwks is None and client.jwks_uri is None
    assert client.scopes == ("read",)
    assert store.use_assertion("old", "j", datetime.now(timezone.utc) + timedelta(minutes=1))
    # And back down, for an operator who must roll back.
    with store.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0001")
    assert store.schema_version() == "0001"
    store.close()


# -- the guarded transport a trusted issuer's metadata and keys are fetched through ----------


@pytest.mark.parametrize("addresses", [["127.0.0.1"], ["10.1.2.3"], ["::1"], ["169.254.169.254"]])
def test_the_guarded_transport_refuses_private_addresses_before_connecting(
    addresses: list[str],
) -> None:
    from authkestra.errors import NetworkError
    from authkestra.server.jwks_uri import GuardedTransport

    transport = GuardedTransport(resolver=lambda *_: addresses)
    with httpx.Client(transport=transport) as http, pytest.raises(NetworkError) as caught:
        http.get("https://issuer.example.com/.well-known/openid-configuration")
    assert "loopback, private or reserved" in str(caught.value)
    assert caught.value.retryable is False


def test_the_guarded_transport_connects_to_the_address_it_checked() -> None:
    from authkestra.server.jwks_uri import GuardedTransport

    seen: list[httpx.Request] = []

    class Recording(GuardedTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            pinned = self._pin(request)
            seen.append(pinned)
            return httpx.Response(200, json={"keys": []}, request=pinned)

    transport = Recording(resolver=lambda *_: ["93.184.215.14"])
    with httpx.Client(transport=transport) as http:
        assert http.get("https://issuer.example.com:8443/keys").json() == {"keys": []}
    assert str(seen[0].url) == "https://93.184.215.14:8443/keys"
    assert seen[0].headers["host"] == "issuer.example.com:8443"
    assert seen[0].extensions["sni_hostname"] == "issuer.example.com"
