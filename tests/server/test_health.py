"""``/healthz`` (the process answers), ``/readyz`` (it can serve), and every 503 with
``Retry-After``: a store or Redis that is down is a 503 to retry, never a 500."""

from __future__ import annotations

import time

import pytest
from sqlalchemy.exc import OperationalError

from authkestra.server.endpoints import health
from tests.server.conftest import MakeServer
from tests.server.harness import InProcessServer, assert_oauth_error
from tests.support.redis_server import free_port


def broken(*_args: object, **_kwargs: object) -> None:
    raise OperationalError("SELECT 1", {}, ConnectionRefusedError("db.internal:5432 refused"))


def assert_unavailable(response, checks: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == 503
    assert int(response.headers["retry-after"]) >= 1
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"] == checks
    failed = [name for name, result in checks.items() if result != "ok"]
    assert body["reason"] == f"{', '.join(failed)} not ready"
    assert "db.internal" not in response.text and "refused" not in response.text


def test_healthz_answers_without_io(
    server: InProcessServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server.ctx.store, "ping", broken)
    response = server.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_checks_the_store_and_the_signing_key(server: InProcessServer) -> None:
    response = server.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"store": "ok", "signing_key": "ok"}}
    assert response.headers["cache-control"] == "no-store"


def test_readyz_is_503_with_the_reason_when_the_store_is_down(
    server: InProcessServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server.ctx.store, "ping", broken)
    assert_unavailable(
        server.get("/readyz"), {"store": "failed (OperationalError)", "signing_key": "ok"}
    )


def test_a_check_that_hangs_counts_as_failed(
    server: InProcessServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(health, "CHECK_TIMEOUT", 0.2)
    monkeypatch.setattr(server.ctx.store, "ping", lambda: time.sleep(5))
    assert_unavailable(
        server.get("/readyz"), {"store": "no answer within 0.2 s", "signing_key": "ok"}
    )


def test_a_redis_that_is_down(make_server: MakeServer) -> None:
    server = make_server(redis=f"redis://127.0.0.1:{free_port()}/0")
    assert server.get("/healthz").status_code == 200
    assert_unavailable(
        server.get("/readyz"),
        {"store": "ok", "redis": "failed (ConnectionError)", "signing_key": "ok"},
    )
    client = server.add_client()
    response = server.token(client)
    body = assert_oauth_error(response, "temporarily_unavailable", 503)
    assert int(response.headers["retry-after"]) >= 1
    assert "retry" in body["error_description"]


def test_a_store_that_goes_down_mid_request_is_a_503(
    server: InProcessServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = server.add_client()
    assert server.token(client).status_code == 200
    # Every read fails from now on, through a session or a plain connection.
    monkeypatch.setattr(server.ctx.store, "session", broken)
    monkeypatch.setattr(server.ctx.store.engine, "connect", broken)
    for path in ("/token", "/introspect"):
        response = server.form(
            path, {"grant_type": "client_credentials", "token": "x"}, basic=client
        )
        assert_oauth_error(response, "temporarily_unavailable", 503)
        assert int(response.headers["retry-after"]) >= 1
        assert "db.internal" not in response.text
