"""The server's logs: an access line per request, an audit line per security event, text or
JSON -- and never a secret, an assertion, a proof or a whole token in any line."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from joserfc.jwk import ECKey

from authkestra._protocol.client_auth import basic_credentials
from authkestra._protocol.dpop import generate_dpop_key, proof
from authkestra.server.logs import JsonFormatter, TextFormatter
from tests.server.harness import InProcessServer, jose_part
from tests.server.test_key_client_auth import assertion, jwks_of
from tests.support.authkestra_server import AuthkestraServer, cli


def records(caplog: pytest.LogCaptureFixture, logger: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == logger]


def fields(record: logging.LogRecord) -> dict[str, object]:
    found = getattr(record, "fields", None)
    assert isinstance(found, dict)
    return found


@pytest.fixture
def logged(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.INFO, logger="authkestra")
    yield caplog


# -- the lines, in process ----------------------------------------------------------------------


def test_a_token_issued_is_audited_by_its_jti(
    server: InProcessServer, logged: pytest.LogCaptureFixture
) -> None:
    client = server.add_client()
    token = server.access_token(client, scope="read")
    (issued,) = [r for r in records(logged, "authkestra.server.audit") if r.msg == "token_issued"]
    claims = jose_part(token, 1)
    assert fields(issued) | {"request_id": None} == {
        "client_id": client[0],
        "scope": "read",
        "aud": claims["aud"],
        "jti": claims["jti"],
        "exp": claims["exp"],
        "bound_to": None,
        "request_id": None,
    }


def test_every_request_gets_an_access_line_and_a_request_id(
    server: InProcessServer, logged: pytest.LogCaptureFixture
) -> None:
    client = server.add_client()
    response = server.token(client)
    request_id = response.headers["x-request-id"]
    assert len(request_id) == 16
    (line,) = records(logged, "authkestra.server.access")
    assert fields(line) == {
        "method": "POST",
        "path": "/token",
        "status": 200,
        "client_id": client[0],
        "latency_ms": fields(line)["latency_ms"],
        "request_id": request_id,
        "address": "127.0.0.1",
    }
    audit = [r for r in records(logged, "authkestra.server.audit") if r.msg == "token_issued"]
    assert fields(audit[0])["request_id"] == request_id
    # A caller's own sane request id is kept; a hostile one is replaced.
    assert server.get("/healthz", headers={"X-Request-Id": "lb-42.a"}).headers["x-request-id"] == (
        "lb-42.a"
    )
    for hostile in ("two words", "a" * 65, "x;y"):
        replaced = server.get("/healthz", headers={"X-Request-Id": hostile}).headers
        assert replaced["x-request-id"] != hostile and len(replaced["x-request-id"]) == 16


@pytest.mark.parametrize(
    ("credentials", "reason"),
    [
        (("ghost", "x"), "unknown client"),
        (None, "wrong secret"),  # the right client id, a wrong secret
    ],
)
def test_a_refusal_is_audited_with_its_reason(
    server: InProcessServer,
    logged: pytest.LogCaptureFixture,
    credentials: tuple[str, str] | None,
    reason: str,
) -> None:
    client_id, _ = server.add_client()
    credentials = credentials or (client_id, "wrong-secret-value")
    assert server.token(credentials).status_code == 401
    (refused,) = [
        r for r in records(logged, "authkestra.server.audit") if r.msg == "authentication_refused"
    ]
    assert fields(refused)["reason"] == reason
    assert fields(refused)["client_id"] == credentials[0]
    assert fields(refused)["method"] == "client_secret_basic"
    (line,) = records(logged, "authkestra.server.access")
    assert fields(line)["status"] == 401 and fields(line)["client_id"] == credentials[0]


def test_throttling_is_audited(make_server: object, logged: pytest.LogCaptureFixture) -> None:
    server = make_server(max_failures_per_address=1)  # type: ignore[operator]
    for _ in range(3):
        server.token(("ghost", "x"))
    throttled = [r for r in records(logged, "authkestra.server.audit") if r.msg == "throttled"]
    assert throttled and fields(throttled[0])["address"] == "127.0.0.1"


def test_the_query_string_is_never_logged(
    server: InProcessServer, logged: pytest.LogCaptureFixture
) -> None:
    client = server.add_client()
    secret_in_query = "query-secret-0123456789"
    response = server.post(
        f"/token?client_secret={secret_in_query}",
        content=b"grant_type=client_credentials",
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Authorization": basic_credentials(*client),
        },
    )
    assert response.status_code == 400
    (line,) = records(logged, "authkestra.server.access")
    assert fields(line)["path"] == "/token"
    assert all(secret_in_query not in r.getMessage() + str(fields(r)) for r in logged.records)


def test_changes_are_audited_with_their_door(
    server: InProcessServer, logged: pytest.LogCaptureFixture
) -> None:
    from tests.server.test_clients_cli import run

    assert run("clients", "create", "svc", "--scope", "read", "--db", server.db)[0] == 0
    assert run("clients", "update", "svc", "--scope", "write", "--db", server.db)[0] == 0
    assert run("clients", "rotate-secret", "svc", "--db", server.db)[0] == 0
    assert run("clients", "delete", "svc", "--db", server.db)[0] == 0
    assert run("keys", "rotate", "--db", server.db)[0] == 0
    events = [
        (r.msg, fields(r).get("door"))
        for r in records(logged, "authkestra.server.audit")
        if r.msg != "signing_key_created"
    ]
    assert events == [
        ("client_created", "cli"),
        ("client_updated", "cli"),
        ("client_secret_rotated", "cli"),
        ("client_deleted", "cli"),
        ("signing_key_rotated", "cli"),
    ]
    updated = next(
        r for r in records(logged, "authkestra.server.audit") if r.msg == "client_updated"
    )
    assert fields(updated)["changed"] == ["default_scopes", "scopes"]


# -- the formats ---------------------------------------------------------------------------------


def _record(**fields: object) -> logging.LogRecord:
    record = logging.LogRecord("authkestra.server.audit", logging.INFO, "", 0, "event", (), None)
    record.fields = fields
    return record


def test_json_lines_are_one_object_each() -> None:
    line = JsonFormatter().format(_record(client_id="svc\nforged line", scope="read write"))
    assert "\n" not in line
    document = json.loads(line)
    assert document["message"] == "event" and document["level"] == "info"
    assert document["logger"] == "authkestra.server.audit"
    assert document["client_id"] == "svc\nforged line"
    assert document["time"].endswith("Z")


def test_text_lines_quote_what_could_forge_a_field_or_a_line() -> None:
    line = TextFormatter().format(
        _record(client_id="svc\nforged level=error", scope=["read", "write"], aud=None, n=3)
    )
    assert "\n" not in line
    assert ' client_id="svc\\nforged level=error"' in line
    assert ' scope="read write"' in line and " aud=- " in line and line.endswith(" n=3")


# -- a whole run, grepped ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chatty(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthkestraServer]:
    """A real server logging everything, as JSON."""
    server = AuthkestraServer(
        log_level="debug", extra_args=("--log-format", "json", "--registration"), admin=True
    )
    yield server
    server.stop()


def test_no_secret_or_token_in_any_line_of_a_full_run(
    chatty: AuthkestraServer, tmp_path: Path
) -> None:
    secrets_used: list[str] = []
    basic_id, basic_secret = chatty.create_client(
        "svc-basic", "--scope", "read", "--can-introspect", "any"
    )
    post_id, post_secret = chatty.create_client(
        "svc-post", "--scope", "read", "--auth-method", "client_secret_post"
    )
    secrets_used += [basic_secret, post_secret]
    key = ECKey.generate_key("P-256", {"kid": "k1"}, private=True)
    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_text(jwks_of(key))
    cli(
        "clients", "create", "svc-keyed", "--auth-method", "private_key_jwt", "--jwks",
        str(jwks_file), "--scope", "read", "--db", chatty.db,
    )  # fmt: skip
    token_url = chatty.token_url
    grant = {"grant_type": "client_credentials"}
    basic = {"Authorization": basic_credentials(basic_id, basic_secret)}
    first = httpx.post(token_url, data=grant, headers=basic).json()["access_token"]
    second = httpx.post(
        token_url, data={**grant, "client_id": post_id, "client_secret": post_secret}
    ).json()["access_token"]
    signed = assertion(key, "ES256", "svc-keyed", aud=chatty.issuer)
    third = httpx.post(
        token_url,
        data={
            **grant,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": signed,
        },
    ).json()["access_token"]
    dpop_key = generate_dpop_key()
    dpop_proof = proof(dpop_key, "POST", token_url, now=int(time.time()))
    fourth = httpx.post(token_url, data=grant, headers={**basic, "DPoP": dpop_proof}).json()[
        "access_token"
    ]
    wrong = "wrong-secret-but-still-a-secret-0123"
    assert (
        httpx.post(
            token_url, data=grant, headers={"Authorization": basic_credentials(basic_id, wrong)}
        ).status_code
        == 401
    )
    in_query = httpx.post(f"{token_url}?client_secret={basic_secret}", data=grant, headers=basic)
    assert in_query.status_code == 400
    for token in (first, second, third, fourth):
        answer = httpx.post(f"{chatty.issuer}/introspect", data={"token": token}, headers=basic)
        assert answer.json()["active"] is True
    assert (
        httpx.post(f"{chatty.issuer}/revoke", data={"token": first}, headers=basic).status_code
        == 200
    )

    # The operator's doors: the admin API, and dynamic registration.
    admin = chatty.admin_token()
    made = chatty.admin_request(
        "POST", "/admin/clients", admin, json={"client_id": "svc-admin", "scope": "read"}
    ).json()
    rotated = chatty.admin_request(
        "POST", "/admin/clients/svc-admin/rotate-secret", admin, json={"grace_period": 0}
    ).json()
    initial = chatty.admin_request(
        "POST", "/admin/registration-tokens", admin, json={"scope": "read"}
    ).json()["initial_access_token"]
    registered = httpx.post(
        f"{chatty.issuer}/register", json={}, headers={"Authorization": f"Bearer {initial}"}
    ).json()
    registration_token = registered["registration_access_token"]
    assert httpx.get(
        registered["registration_client_uri"],
        headers={"Authorization": f"Bearer {registration_token}"},
    ).is_success
    assert chatty.admin_request("GET", "/metrics", admin).is_success
    secrets_used += [
        made["client_secret"], rotated["client_secret"], registered["client_secret"],
    ]  # fmt: skip

    time.sleep(0.5)  # the last lines reach the file
    log = chatty.log_path.read_text()
    lines = [line for line in log.splitlines() if line.strip()]
    documents = [json.loads(line) for line in lines]  # every line is one JSON object
    events = {d["message"] for d in documents if d["logger"] == "authkestra.server.audit"}
    assert {"token_issued", "authentication_refused", "token_revoked"} <= events
    doors = {d.get("door") for d in documents if d["message"] == "client_created"}
    assert {"admin", "registration"} <= doors  # the CLI's changes: on the CLI's stderr
    access = [d for d in documents if d["logger"] == "authkestra.server.access"]
    assert len(access) >= 10 and all("?" not in d["path"] for d in access)
    tokens = (first, second, third, fourth, admin, initial, registration_token)
    for value in (*secrets_used, wrong, *tokens, signed, dpop_proof):
        assert value not in log
        # Nor the signature part of any of them on its own.
        assert value.rsplit(".", 1)[-1] not in log


def test_a_cli_change_is_audited_on_its_stderr(chatty: AuthkestraServer) -> None:
    made = cli("clients", "create", "svc-audited", "--format", "json", "--db", chatty.db)
    secret = json.loads(made.stdout)["client_secret"]
    (line,) = [x for x in made.stderr.splitlines() if " client_created " in x]
    assert "authkestra.server.audit" in line
    assert "client_id=svc-audited" in line and "door=cli" in line
    assert secret not in made.stderr
