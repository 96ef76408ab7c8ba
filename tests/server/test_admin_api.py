"""The admin API: clients as RFC 7591 metadata, keys, metrics, behind the server's own tokens."""

from __future__ import annotations

import json
import logging

import pytest

from tests.server.conftest import MakeServer
from tests.server.harness import API, InProcessServer

ADMIN = "authkestra:admin"


@pytest.fixture
def admin(server: InProcessServer) -> str:
    return server.admin_token()


# -- who may use it ---------------------------------------------------------------------------


def test_no_token_is_401_with_a_bearer_challenge(server: InProcessServer) -> None:
    answer = server.admin("GET", "/admin/clients")
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"].startswith('Bearer realm="authkestra-admin"')
    assert "error=" not in answer.headers["www-authenticate"]  # RFC 6750 §3.1: none sent


@pytest.mark.parametrize(
    "token",
    ["garbage", "a.b.c", "eyJhbGciOiJub25lIn0.eyJzY29wZSI6ImF1dGhrZXN0cmE6YWRtaW4ifQ."],
)
def test_a_token_not_of_this_server_is_401_invalid_token(
    server: InProcessServer, token: str
) -> None:
    answer = server.admin("GET", "/admin/clients", token=token)
    assert answer.status_code == 401
    assert answer.json()["error"] == "invalid_token"
    assert 'error="invalid_token"' in answer.headers["www-authenticate"]


def test_a_forged_admin_scope_is_refused(server: InProcessServer) -> None:
    """Signed by another key with this server's kid: not a token of this server."""
    client = server.add_client(scopes=["read"])
    real = server.access_token(client)
    signature = real.split(".")[2]
    claims = server.claims_for(client[0], scope=ADMIN)
    forged = server.sign(claims).split(".")
    # The right header and claims, another token's signature.
    answer = server.admin("GET", "/admin/clients", token=f"{forged[0]}.{forged[1]}.{signature}")
    assert answer.status_code == 401


def test_a_token_without_the_scope_is_403(server: InProcessServer) -> None:
    token = server.access_token(server.add_client(scopes=["read"]))
    answer = server.admin("GET", "/admin/clients", token=token)
    assert answer.status_code == 403
    assert answer.json()["error"] == "insufficient_scope"
    assert f'scope="{ADMIN}"' in answer.headers["www-authenticate"]


def test_the_metrics_scope_opens_metrics_only(server: InProcessServer) -> None:
    token = server.admin_token("authkestra:metrics")
    assert server.admin("GET", "/metrics", token=token).status_code == 200
    assert server.admin("GET", "/admin/clients", token=token).status_code == 403
    assert server.admin("GET", "/admin/keys", token=token).status_code == 403


def test_a_revoked_token_or_a_disabled_client_loses_the_api(server: InProcessServer) -> None:
    client = server.add_client(scopes=[ADMIN], introspection=None)
    token = server.access_token(client, scope=ADMIN)
    assert server.admin("GET", "/admin/clients", token=token).status_code == 200
    server.ctx.store.set_enabled(client[0], False)
    assert server.admin("GET", "/admin/clients", token=token).status_code == 401
    server.ctx.store.set_enabled(client[0], True)
    assert server.revoke(token, client).status_code == 200
    assert server.admin("GET", "/admin/clients", token=token).status_code == 401


def test_a_dpop_bound_token_is_not_a_bearer_token_here(server: InProcessServer) -> None:
    client = server.add_client(scopes=[ADMIN])
    claims = server.claims_for(client[0], scope=ADMIN, cnf={"jkt": "x" * 43})
    answer = server.admin("GET", "/admin/clients", token=server.sign(claims))
    assert answer.status_code == 401
    assert "sender-constrained" in answer.json()["error_description"]


# -- clients ----------------------------------------------------------------------------------


def test_create_returns_the_secret_once_and_the_client_gets_tokens(
    server: InProcessServer, admin: str
) -> None:
    answer = server.admin(
        "POST",
        "/admin/clients",
        token=admin,
        json={
            "client_id": "reporting",
            "client_name": "Nightly reports",
            "scope": "read write",
            "audience": [API],
            "access_token_lifetime": 600,
        },
    )
    assert answer.status_code == 201, answer.text
    created = answer.json()
    assert created["client_id"] == "reporting"
    assert created["client_secret_expires_at"] == 0
    assert created["grant_types"] == ["client_credentials"]
    assert created["token_endpoint_auth_method"] == "client_secret_basic"
    token = server.token(("reporting", created["client_secret"]), {"scope": "read"})
    assert token.status_code == 200 and token.json()["expires_in"] == 600

    shown = server.admin("GET", "/admin/clients/reporting", token=admin).json()
    assert "client_secret" not in shown
    assert shown["client_name"] == "Nightly reports"
    assert shown["scope"] == "read write"
    assert shown["secrets"] == [{"expires_at": None}]
    listed = server.admin("GET", "/admin/clients", token=admin).json()["clients"]
    assert "reporting" in {c["client_id"] for c in listed}
    assert all("client_secret" not in c for c in listed)


def test_create_without_an_id_makes_one(server: InProcessServer, admin: str) -> None:
    answer = server.admin("POST", "/admin/clients", token=admin, json={"scope": "read"})
    assert answer.status_code == 201
    assert answer.json()["client_id"].startswith("client-")


@pytest.mark.parametrize(
    ("metadata", "named"),
    [
        ({"scope": "read\\x"}, "scope"),
        ({"token_endpoint_auth_method": "private_key_jwt"}, "jwks"),
        ({"token_endpoint_auth_method": "none"}, "confidential"),
        ({"token_endpoint_auth_method": "bogus"}, "token_endpoint_auth_method"),
        ({"grant_types": ["authorization_code"]}, "grant_types"),
        ({"grant_types": [{}]}, "grant_types"),
        ({"grant_types": "client_credentials"}, "grant_types"),
        ({"client_name": ["x"]}, "client_name"),
        ({"client_name": "line\nbreak"}, "client_name"),
        ({"token_endpoint_auth_method": 7}, "token_endpoint_auth_method"),
        ({"jwks_uri": "http://keys.example/jwks"}, "jwks_uri"),
        ({"audience": "https://api.example/"}, "audience"),
        ({"access_token_lifetime": 0}, "access_token_lifetime"),
        ({"default_scope": "admin", "scope": "read"}, "default_scope"),
        ({"introspection": "all"}, "introspection"),
        ({"jwks": [1]}, "jwks"),
        ({"scopes": "read"}, "scopes"),  # a typo is refused, not dropped
        ({"client_id": "has space"}, "client id"),
        ({"tls_client_auth_subject_dn": "CN=x"}, "tls_client_auth"),
    ],
)
def test_bad_metadata_is_invalid_client_metadata_naming_the_field(
    server: InProcessServer, admin: str, metadata: dict[str, object], named: str
) -> None:
    answer = server.admin("POST", "/admin/clients", token=admin, json=metadata)
    assert answer.status_code == 400, answer.text
    body = answer.json()
    assert body["error"] == "invalid_client_metadata"
    assert named in body["error_description"]
    assert "--" not in body["error_description"]  # metadata words, not CLI flags


@pytest.mark.parametrize("body", [b"{", b"[]", b"\xff", b'"x"'])
def test_a_body_that_is_no_json_object_is_refused(
    server: InProcessServer, admin: str, body: bytes
) -> None:
    answer = server.admin(
        "POST", "/admin/clients", token=admin, content=body,
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    assert answer.status_code == 400
    assert answer.json()["error"] in {"invalid_request", "invalid_client_metadata"}


def test_a_huge_body_is_413(server: InProcessServer, admin: str) -> None:
    answer = server.admin("POST", "/admin/clients", token=admin, content=b"x" * 100_000)
    assert answer.status_code == 413


def test_an_existing_id_is_409(server: InProcessServer, admin: str) -> None:
    client_id, _ = server.add_client()
    answer = server.admin("POST", "/admin/clients", token=admin, json={"client_id": client_id})
    assert answer.status_code == 409


def test_patch_changes_scope_and_keeps_the_secret(server: InProcessServer, admin: str) -> None:
    client = server.add_client(scopes=["read", "write"])
    answer = server.admin(
        "PATCH",
        f"/admin/clients/{client[0]}",
        token=admin,
        json={"scope": "read", "access_token_lifetime": 120, "introspection": "any"},
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["scope"] == "read"
    assert answer.json()["introspection"] == "any"
    granted = server.token(client)
    assert granted.status_code == 200
    assert granted.json()["scope"] == "read" and granted.json()["expires_in"] == 120
    assert server.token(client, {"scope": "write"}).json()["error"] == "invalid_scope"


def test_patch_disables_and_enables(server: InProcessServer, admin: str) -> None:
    client = server.add_client()
    path = f"/admin/clients/{client[0]}"
    assert server.admin("PATCH", path, token=admin, json={"enabled": False}).status_code == 200
    assert server.token(client).status_code == 401
    assert server.admin("PATCH", path, token=admin, json={"enabled": True}).status_code == 200
    assert server.token(client).status_code == 200


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"token_endpoint_auth_method": "client_secret_post"}, "token_endpoint_auth_method"),
        ({"client_id": "other"}, "client_id"),
        ({"enabled": "no"}, "enabled"),
        ({"jwks": {"keys": []}}, "no keys"),
    ],
)
def test_patch_refusals_name_the_field(
    server: InProcessServer, admin: str, change: dict[str, object], named: str
) -> None:
    client_id, _ = server.add_client()
    answer = server.admin("PATCH", f"/admin/clients/{client_id}", token=admin, json=change)
    assert answer.status_code == 400, answer.text
    assert named in answer.json()["error_description"]


def test_unknown_client_is_404(server: InProcessServer, admin: str) -> None:
    for method in ("GET", "DELETE"):
        assert server.admin(method, "/admin/clients/nobody", token=admin).status_code == 404
    answer = server.admin("PATCH", "/admin/clients/nobody", token=admin, json={"scope": "x"})
    assert answer.status_code == 404


def test_rotate_secret_with_a_grace_period(server: InProcessServer, admin: str) -> None:
    old = server.add_client()
    answer = server.admin(
        "POST", f"/admin/clients/{old[0]}/rotate-secret", token=admin, json={"grace_period": 3600}
    )
    assert answer.status_code == 200, answer.text
    new = (old[0], answer.json()["client_secret"])
    assert new[1] != old[1]
    assert answer.json()["previous_secrets_expire_at"] > 0
    assert server.token(old).status_code == 200  # in its grace period
    assert server.token(new).status_code == 200

    answer = server.admin(
        "POST", f"/admin/clients/{old[0]}/rotate-secret", token=admin, json={"grace_period": 0}
    )
    newest = (old[0], answer.json()["client_secret"])
    assert server.token(new).status_code == 401
    assert server.token(newest).status_code == 200
    bad = server.admin(
        "POST", f"/admin/clients/{old[0]}/rotate-secret", token=admin, json={"grace_period": -1}
    )
    assert bad.status_code == 400


def test_delete_removes_the_client(server: InProcessServer, admin: str) -> None:
    client = server.add_client()
    assert server.admin("DELETE", f"/admin/clients/{client[0]}", token=admin).status_code == 204
    assert server.token(client).status_code == 401
    assert server.admin("GET", f"/admin/clients/{client[0]}", token=admin).status_code == 404


def test_changes_are_audited_with_the_admin_door(
    server: InProcessServer, admin: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="authkestra.server.audit")
    answer = server.admin("POST", "/admin/clients", token=admin, json={"client_id": "audited"})
    secret = answer.json()["client_secret"]
    events = [(r.getMessage(), getattr(r, "fields", {})) for r in caplog.records]
    created = [fields for message, fields in events if message == "client_created"]
    assert created and created[0]["door"] == "admin" and created[0]["client_id"] == "audited"
    assert not any(secret in json.dumps(fields, default=str) for _, fields in events)
    assert not any(admin in json.dumps(fields, default=str) for _, fields in events)


# -- keys -------------------------------------------------------------------------------------


def test_rotate_and_withdraw_keys(server: InProcessServer, admin: str) -> None:
    listed = server.admin("GET", "/admin/keys", token=admin).json()["keys"]
    assert len(listed) == 1 and listed[0]["signing"] is True
    first = listed[0]["kid"]

    rotated = server.admin(
        "POST", "/admin/keys/rotate", token=admin, json={"publish_ahead": 0, "keep_old_for": 60}
    )
    assert rotated.status_code == 201, rotated.text
    new = rotated.json()["kid"]
    kids = {k["kid"] for k in server.jwks()["keys"]}
    assert kids == {first, new}
    listed = server.admin("GET", "/admin/keys", token=admin).json()["keys"]
    signing = {k["kid"]: k["signing"] for k in listed}
    assert signing == {first: False, new: True}

    withdrawn = server.admin("DELETE", f"/admin/keys/{first}", token=admin)
    assert withdrawn.status_code == 200 and withdrawn.json()["withdrawn"] == first
    assert {k["kid"] for k in server.jwks()["keys"]} == {new}
    again = server.admin_token()  # the first token was signed by the withdrawn key
    assert server.admin("DELETE", f"/admin/keys/{first}", token=again).status_code == 404


def test_withdrawing_the_signing_key_replaces_it(server: InProcessServer, admin: str) -> None:
    (only,) = server.admin("GET", "/admin/keys", token=admin).json()["keys"]
    answer = server.admin("DELETE", f"/admin/keys/{only['kid']}", token=admin).json()
    assert answer["signing_now"] and answer["signing_now"] != only["kid"]
    assert [k["kid"] for k in server.jwks()["keys"]] == [answer["signing_now"]]
    # The admin token was signed by the withdrawn key: it no longer opens the API.
    assert server.admin("GET", "/admin/keys", token=admin).status_code == 401


@pytest.mark.parametrize(
    "body", [{"alg": "HS256"}, {"publish_ahead": -1}, {"keep_old_for": "soon"}, [1]]
)
def test_rotate_refuses_bad_options(server: InProcessServer, admin: str, body: object) -> None:
    answer = server.admin("POST", "/admin/keys/rotate", token=admin, json=body)
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_request"


# -- metrics and the document ------------------------------------------------------------------


def test_metrics_count_tokens_refusals_and_latency(server: InProcessServer, admin: str) -> None:
    client = server.add_client()
    server.access_token(client)
    server.token((client[0], "wrong"))
    server.token(("nobody", "wrong"))
    text = server.admin("GET", "/metrics", token=admin).text
    assert f'authkestra_token_requests_total{{client_id="{client[0]}",outcome="issued"}}' in text
    assert 'authkestra_token_requests_total{client_id="",outcome="invalid_client"}' in text
    assert 'authkestra_authentication_failures_total{reason="wrong_secret"}' in text
    assert 'authkestra_authentication_failures_total{reason="unknown_client"}' in text
    assert 'authkestra_request_duration_seconds_bucket{endpoint="/token"' in text
    assert "authkestra_signing_key_age_seconds " in text
    assert "nobody" not in text  # ids strangers send are no label
    assert client[1] not in text


def test_the_openapi_document_describes_every_route(server: InProcessServer) -> None:
    answer = server.admin("GET", "/admin/openapi.json")
    assert answer.status_code == 200
    document = answer.json()
    assert document["openapi"].startswith("3.1")
    from authkestra.server.admin import create_admin_app

    app = create_admin_app(server.settings, context=server.ctx)
    routes = {(r.path, m.lower()) for r in app.routes for m in r.methods or () if m != "HEAD"}
    described = {(p, m) for p, item in document["paths"].items() for m in item if m != "parameters"}
    assert described == routes - {("/healthz", "get"), ("/admin/openapi.json", "get")}
    flow = document["components"]["securitySchemes"]["serverToken"]["flows"]
    assert flow["clientCredentials"]["tokenUrl"] == server.settings.endpoint("/token")


def test_an_unknown_admin_path_is_a_problem_not_an_oauth_error(server: InProcessServer) -> None:
    answer = server.admin("GET", "/admin/nothing")
    assert answer.status_code == 404
    assert answer.headers["content-type"] == "application/problem+json"
    assert "error" not in answer.json()


def test_changes_reach_the_token_endpoint_at_once_despite_its_cache(
    make_server: MakeServer,
) -> None:
    """The admin API beside the token endpoint drops what it changed from this process's
    caches (other instances see it after ``cache_seconds``)."""
    server = make_server(cache_seconds=600)
    admin = server.admin_token()
    client = server.add_client()
    assert server.token(client).status_code == 200  # now cached for 10 minutes
    server.admin("PATCH", f"/admin/clients/{client[0]}", token=admin, json={"enabled": False})
    assert server.token(client).status_code == 401
    rotated = server.admin(
        "POST", "/admin/keys/rotate", token=admin, json={"publish_ahead": 0, "keep_old_for": 60}
    ).json()["kid"]
    assert rotated in {k["kid"] for k in server.jwks()["keys"]}


HOSTILE_VALUES = [
    None,
    0,
    -1,
    True,
    1.5,
    "",
    "\u0000",
    "x" * 3000,
    [],
    {},
    [{}],
    [None],
    {"keys": 1},
]
FIELDS = [
    "client_id", "client_name", "scope", "default_scope", "grant_types",
    "token_endpoint_auth_method", "jwks", "jwks_uri", "tls_client_auth_subject_dn",
    "tls_client_auth_san_dns", "audience", "access_token_lifetime", "enabled", "introspection",
]  # fmt: skip


def test_hostile_metadata_is_refused_never_a_500(server: InProcessServer, admin: str) -> None:
    """Every field with every kind of wrong value: 201 or 400, for create and change."""
    target = server.add_client()[0]
    for field in FIELDS:
        for value in HOSTILE_VALUES:
            made = server.admin("POST", "/admin/clients", token=admin, json={field: value})
            assert made.status_code in (201, 400), (field, value, made.text)
            if made.status_code == 400:
                assert made.json()["error"] == "invalid_client_metadata", (field, value)
            changed = server.admin(
                "PATCH", f"/admin/clients/{target}", token=admin, json={field: value}
            )
            assert changed.status_code in (200, 400), (field, value, changed.text)


def test_refused_tokens_are_throttled_per_address(make_server: MakeServer) -> None:
    server = make_server(max_failures_per_address=3)
    answers = [server.admin("GET", "/admin/clients", token="forged") for _ in range(5)]
    assert [a.status_code for a in answers[:3]] == [401, 401, 401]
    assert answers[-1].status_code == 429
    assert int(answers[-1].headers["Retry-After"]) >= 1


def test_a_refused_federated_assertion_is_counted_as_such(
    server: InProcessServer, admin: str
) -> None:
    """Its reasons vary (they name issuers): one fixed label, whatever the reason."""
    from authkestra.server.metrics import refusal_reason

    assert refusal_reason("federated assertion: assertion replayed") == "federated_assertion"
    client_id = "fed-counted"
    server.ctx.store.add_issuer("cluster", "https://cluster.example.test")
    server.ctx.store.create_client(
        client_id, secret_hash=None, auth_method="private_key_jwt", scopes=("read",),
        audiences=(), federated_issuer="cluster", federated_subject="system:sa",
    )  # fmt: skip
    header = jose_part_of({"alg": "ES256", "typ": "JWT"})
    claims = jose_part_of({"iss": "https://elsewhere.test", "sub": "system:sa", "exp": 2**31})
    answer = server.form(
        "/token",
        {
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": f"{header}.{claims}.c2lnbmF0dXJl",
        },
    )
    assert answer.json()["error"] == "invalid_client"
    text = server.admin("GET", "/metrics", token=admin).text
    assert 'authkestra_authentication_failures_total{reason="federated_assertion"}' in text
    assert "elsewhere" not in text


def jose_part_of(document: dict[str, object]) -> str:
    import base64
    import json

    return base64.urlsafe_b64encode(json.dumps(document).encode()).rstrip(b"=").decode()
