"""Dynamic client registration (RFC 7591) and client self-management (RFC 7592)."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from authkestra.server.registration_tokens import mint_initial_token
from tests.server.conftest import MakeServer
from tests.server.harness import API, API2, InProcessServer, jose_part
from tests.server.test_key_client_auth import KEYS, jwks_of

ENDPOINT = "https://as.example.test/register"


@pytest.fixture
def server(make_server: MakeServer) -> InProcessServer:
    return make_server(registration=True)


def initial_token(
    server: InProcessServer, scope: str = "read write", audience: tuple[str, ...] = (API,)
) -> str:
    answer = server.admin(
        "POST",
        "/admin/registration-tokens",
        token=server.admin_token(),
        json={"scope": scope, "audience": list(audience), "expires_in": 600},
    )
    assert answer.status_code == 201, answer.text
    assert answer.json()["registration_endpoint"] == ENDPOINT
    return str(answer.json()["initial_access_token"])


def register(server: InProcessServer, token: str | None, metadata: dict[str, Any]) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return server.post("/register", json=metadata, headers=headers)


def manage(server: InProcessServer, method: str, client: dict[str, Any], **kwargs: Any) -> Any:
    path = client["registration_client_uri"].removeprefix("https://as.example.test")
    headers = {"Authorization": f"Bearer {client['registration_access_token']}"}
    return server.request(method, path, headers=headers, **kwargs)


def test_off_by_default(make_server: MakeServer) -> None:
    server = make_server()
    metadata = server.get("/.well-known/oauth-authorization-server").json()
    assert "registration_endpoint" not in metadata
    assert server.post("/register", json={}).status_code == 404


def test_advertised_when_on(server: InProcessServer) -> None:
    metadata = server.get("/.well-known/oauth-authorization-server").json()
    assert metadata["registration_endpoint"] == ENDPOINT


def test_a_registered_client_gets_tokens(server: InProcessServer) -> None:
    answer = register(
        server,
        initial_token(server),
        {"client_name": "an MCP tool", "scope": "read", "redirect_uris": ["https://x/cb"]},
    )
    assert answer.status_code == 201, answer.text
    client = answer.json()
    assert client["client_id"].startswith("dyn-")
    assert client["client_name"] == "an MCP tool"
    assert client["scope"] == "read" and client["audience"] == [API]
    assert client["grant_types"] == ["client_credentials"]
    assert client["client_secret_expires_at"] == 0
    assert client["registration_client_uri"] == f"{ENDPOINT}/{client['client_id']}"
    assert "redirect_uris" not in client  # not understood: ignored (RFC 7591 §2)
    granted = server.token((client["client_id"], client["client_secret"]))
    assert granted.status_code == 200 and granted.json()["scope"] == "read"


def test_asking_nothing_gets_what_the_token_allows(server: InProcessServer) -> None:
    client = register(server, initial_token(server, "read write", (API, API2)), {}).json()
    assert client["scope"] == "read write" and client["audience"] == [API, API2]


def test_a_key_client_registers_without_a_secret(server: InProcessServer) -> None:
    answer = register(
        server,
        initial_token(server),
        {
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks": json.loads(jwks_of(KEYS["ES256"])),
        },
    )
    assert answer.status_code == 201, answer.text
    assert "client_secret" not in answer.json()
    assert answer.json()["jwks"]["keys"][0]["kid"] == KEYS["ES256"].kid


@pytest.mark.parametrize(
    ("metadata", "named"),
    [
        ({"scope": "read admin"}, "scope: admin is beyond"),
        ({"audience": [API2]}, "audience"),
        ({"token_endpoint_auth_method": "none"}, "confidential"),
        ({"grant_types": ["authorization_code"]}, "grant_types"),
        ({"introspection": "any"}, "introspection"),
        ({"enabled": True}, "enabled"),
        ({"token_endpoint_auth_method": "private_key_jwt"}, "jwks"),
        ({"scope": 7}, "scope"),
    ],
)
def test_refusals_are_invalid_client_metadata(
    server: InProcessServer, metadata: dict[str, Any], named: str
) -> None:
    answer = register(server, initial_token(server), metadata)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == "invalid_client_metadata"
    assert named in answer.json()["error_description"]


def test_a_body_that_is_not_a_json_object(server: InProcessServer) -> None:
    token = initial_token(server)
    for body in (b"[1]", b"{", b"\xff"):
        answer = server.post(
            "/register", content=body,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )  # fmt: skip
        assert answer.status_code == 400 and answer.json()["error"] == "invalid_client_metadata"


def test_without_a_valid_initial_access_token_nothing_is_registered(
    server: InProcessServer,
) -> None:
    other_endpoint, _ = mint_initial_token(
        server.ctx.keys, issuer=server.ctx.issuer, endpoint="https://elsewhere/register",
        scopes=["read"], audiences=[API], lifetime=60,
    )  # fmt: skip
    access_token = server.admin_token()  # a real access token of this server: not one
    before = len(server.ctx.store.list_clients())
    for token in (None, "garbage", other_endpoint, access_token):
        answer = register(server, token, {"scope": "read"})
        assert answer.status_code == 401, token
        assert answer.json()["error"] == "invalid_token"
        assert answer.headers["www-authenticate"].startswith("Bearer")
    assert len(server.ctx.store.list_clients()) == before


def test_a_revoked_initial_access_token_registers_nothing(server: InProcessServer) -> None:
    token = initial_token(server)
    jti = jose_part(token, 1)["jti"]
    server.ctx.revocations.revoke(jti, datetime.now(timezone.utc) + timedelta(hours=1))
    assert register(server, token, {}).status_code == 401


def test_the_client_reads_narrows_and_deletes_its_registration(server: InProcessServer) -> None:
    client = register(server, initial_token(server), {"scope": "read write"}).json()
    credentials = (client["client_id"], client["client_secret"])

    read = manage(server, "GET", client)
    assert read.status_code == 200
    assert read.json()["scope"] == "read write"
    assert "client_secret" not in read.json() and "registration_access_token" not in read.json()

    narrowed = manage(
        server, "PUT", client,
        json={"client_id": client["client_id"], "scope": "read", "client_name": "renamed"},
    )  # fmt: skip
    assert narrowed.status_code == 200, narrowed.text
    assert narrowed.json()["scope"] == "read" and narrowed.json()["client_name"] == "renamed"
    assert server.token(credentials, {"scope": "write"}).json()["error"] == "invalid_scope"

    widened = manage(
        server, "PUT", client, json={"client_id": client["client_id"], "scope": "read write"}
    )
    assert widened.status_code == 400
    assert "beyond what the registration allows" in widened.json()["error_description"]
    wrong_id = manage(server, "PUT", client, json={"client_id": "someone-else", "scope": "read"})
    assert wrong_id.status_code == 400
    method = manage(
        server, "PUT", client,
        json={"client_id": client["client_id"], "token_endpoint_auth_method": "client_secret_post"},
    )  # fmt: skip
    assert method.status_code == 400

    assert manage(server, "DELETE", client).status_code == 204
    assert server.token(credentials).status_code == 401
    assert manage(server, "GET", client).status_code == 401


def test_a_registration_token_opens_its_own_client_only(server: InProcessServer) -> None:
    token = initial_token(server)
    first = register(server, token, {}).json()
    second = register(server, token, {}).json()
    crossed = {**second, "registration_access_token": first["registration_access_token"]}
    assert manage(server, "GET", crossed).status_code == 401
    assert manage(server, "DELETE", crossed).status_code == 401
    assert manage(server, "GET", second).status_code == 200
    nobody = {**first, "registration_client_uri": f"{ENDPOINT}/dyn-nobody"}
    assert manage(server, "GET", nobody).status_code == 401
    # A client registered by the operator has no registration access token at all.
    operator_client = server.add_client()
    made_by_hand = {**first, "registration_client_uri": f"{ENDPOINT}/{operator_client[0]}"}
    assert manage(server, "GET", made_by_hand).status_code == 401


def test_registrations_are_audited_through_their_door(
    server: InProcessServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="authkestra.server.audit")
    token = initial_token(server)
    client = register(server, token, {}).json()
    events = {r.getMessage(): getattr(r, "fields", {}) for r in caplog.records}
    assert events["client_created"]["door"] == "registration"
    assert events["initial_access_token_used"]["client_id"] == client["client_id"]
    logged = json.dumps([getattr(r, "fields", {}) for r in caplog.records], default=str)
    for secret in (token, client["client_secret"], client["registration_access_token"]):
        assert secret not in logged


def test_admin_refuses_bad_initial_token_requests(server: InProcessServer) -> None:
    admin = server.admin_token()
    for body in (
        {"scope": "bad\\scope"},
        {"audience": "https://not-a-list"},
        {"expires_in": 0},
        {"expires_in": 10**9},
    ):
        answer = server.admin("POST", "/admin/registration-tokens", token=admin, json=body)
        assert answer.status_code == 400, body


def test_hostile_metadata_at_registration_is_refused_never_a_500(server: InProcessServer) -> None:
    from tests.server.test_admin_api import FIELDS, HOSTILE_VALUES

    token = initial_token(server)
    client = register(server, token, {}).json()
    for field in FIELDS:
        for value in HOSTILE_VALUES:
            answer = register(server, token, {field: value})
            assert answer.status_code in (201, 400), (field, value, answer.text)
            put = manage(
                server, "PUT", client, json={"client_id": client["client_id"], field: value}
            )
            assert put.status_code in (200, 400), (field, value, put.text)


def test_wrong_tokens_are_throttled_with_retry_after(make_server: MakeServer) -> None:
    server = make_server(registration=True, max_failures_per_address=3)
    answers = [register(server, "garbage", {}) for _ in range(5)]
    assert [a.status_code for a in answers[:3]] == [401, 401, 401]
    throttled = answers[-1]
    assert throttled.status_code == 429
    assert throttled.json()["error"] == "temporarily_unavailable"
    assert int(throttled.headers["Retry-After"]) >= 1
