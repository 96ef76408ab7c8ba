"""Flask: ``Authkestra(app, verifier=...)`` and ``@require_scopes``, with Flask's test
client and with a real WSGI server (werkzeug's) on loopback.

Tokens come from ``authkestra.testing.LocalIssuer`` (the verifier fetches its keys in
process) and, over the real server, from a real ``authkestra serve``.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from flask import Flask, g
from werkzeug.serving import make_server

from authkestra import ConfigError
from authkestra.resource import JWTVerifier
from authkestra.resource.flask import Authkestra, require_scopes
from authkestra.testing import LocalIssuer
from tests.resource.conftest import OurDeployment
from tests.resource.support import AUDIENCE

API = "https://orders.test/"


def orders_app(verifier: Any, **options: Any) -> Flask:
    app = Flask(__name__)
    Authkestra(app, verifier=verifier, **options)

    @app.get("/orders")
    @require_scopes("orders:read")
    def orders() -> dict[str, Any]:
        return {"client_id": g.access_token.client_id}

    @app.post("/orders")
    @require_scopes("orders:write")
    async def place() -> dict[str, Any]:
        return {"placed_by": g.access_token.client_id}

    @app.get("/up")
    def up() -> dict[str, str]:
        return {"status": "ok"}

    return app


@pytest.fixture
def local() -> LocalIssuer:
    return LocalIssuer()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_valid_token_reaches_the_view(local: LocalIssuer) -> None:
    client = orders_app(local.verifier(audience=API)).test_client()
    answer = client.get(
        "/orders",
        headers=bearer(local.token(scopes=["orders:read"], audience=API, client_id="billing")),
    )
    assert answer.status_code == 200 and answer.json == {"client_id": "billing"}
    assert client.get("/up").json == {"status": "ok"}  # unprotected


def test_refusals_follow_rfc_6750(local: LocalIssuer) -> None:
    client = orders_app(local.verifier(audience=API)).test_client()
    metadata = 'resource_metadata="https://orders.test/.well-known/oauth-protected-resource"'
    missing = client.get("/orders")
    assert (
        missing.status_code == 401 and missing.headers["WWW-Authenticate"] == f"Bearer {metadata}"
    )
    expired = client.get(
        "/orders", headers=bearer(local.token(scopes=["orders:read"], audience=API, expires_in=-60))
    )
    assert expired.status_code == 401
    assert expired.headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"')
    narrow = client.get("/orders", headers=bearer(local.token(scopes=["other"], audience=API)))
    assert narrow.status_code == 403
    assert 'error="insufficient_scope", scope="orders:read"' in narrow.headers["WWW-Authenticate"]
    assert narrow.json["error"] == "insufficient_scope"
    empty = client.get("/orders", headers={"Authorization": "Bearer"})
    assert empty.status_code == 400 and empty.json["error"] == "invalid_request"
    spaced = client.get("/orders", headers={"Authorization": "Bearer a b"})
    assert spaced.status_code == 400


def test_an_async_view_is_protected_the_same_way(local: LocalIssuer) -> None:
    client = orders_app(local.verifier(audience=API)).test_client()
    writer = local.token(scopes=["orders:write"], audience=API, client_id="ops")
    assert client.post("/orders", headers=bearer(writer)).json == {"placed_by": "ops"}
    assert (
        client.post(
            "/orders", headers=bearer(local.token(scopes=["orders:read"], audience=API))
        ).status_code
        == 403
    )


def test_the_resource_metadata_is_served(local: LocalIssuer) -> None:
    client = orders_app(local.verifier(audience=API)).test_client()
    document = client.get("/.well-known/oauth-protected-resource").json
    assert document["resource"] == API and document["authorization_servers"] == [local.issuer]
    plain = orders_app(local.verifier(audience=API), resource_metadata=False).test_client()
    assert plain.get("/.well-known/oauth-protected-resource").status_code == 404
    assert plain.get("/orders").headers["WWW-Authenticate"] == "Bearer"


def test_a_missing_verifier_is_said_when_the_app_is_set_up() -> None:
    with pytest.raises(ConfigError, match=r"give verifier= or app\.config"):
        Authkestra(Flask(__name__))
    app = Flask(__name__)
    app.config["TESTING"] = True  # the error reaches the test, not a 500 page

    @app.get("/orders")
    @require_scopes("read")
    def orders() -> str:
        return "never"

    with pytest.raises(ConfigError, match="set the app up first"):
        app.test_client().get("/orders")


def test_the_verifier_from_the_config(local: LocalIssuer) -> None:
    app = Flask(__name__)
    app.config["AUTHKESTRA_VERIFIER"] = local.verifier(audience=API)
    Authkestra(app)

    @app.get("/orders")
    @require_scopes("orders:read")
    def orders() -> dict[str, Any]:
        return {"client_id": g.access_token.client_id}

    token = local.token(scopes=["orders:read"], audience=API)
    assert app.test_client().get("/orders", headers=bearer(token)).status_code == 200


@pytest.fixture
def served(our_server: OurDeployment) -> Iterator[str]:
    verifier = JWTVerifier(issuer=our_server.issuer, audience=AUDIENCE, allow_insecure_http=True)
    server = make_server("127.0.0.1", 0, orders_app(verifier), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


def test_over_a_real_wsgi_server_with_a_real_issuer(served: str, our_server: OurDeployment) -> None:
    token = httpx.post(
        our_server.server.token_url,
        data={"grant_type": "client_credentials", "scope": "read"},
        auth=(our_server.client_id, our_server.secret),
        timeout=10,
    ).json()["access_token"]
    # The app asks for orders:read, which this issuer's client does not have: 403.
    refused = httpx.get(f"{served}/orders", headers=bearer(token), timeout=10)
    assert refused.status_code == 403
    reader = our_server.server.create_client(
        f"flask-reader-{secrets.token_hex(3)}", "--scope", "orders:read", "--audience", AUDIENCE
    )
    granted = httpx.post(
        our_server.server.token_url,
        data={"grant_type": "client_credentials"},
        auth=reader,
        timeout=10,
    ).json()["access_token"]
    answer = httpx.get(f"{served}/orders", headers=bearer(granted), timeout=10)
    assert answer.status_code == 200 and answer.json() == {"client_id": reader[0]}
    assert httpx.get(f"{served}/orders", timeout=10).status_code == 401
    assert httpx.get(f"{served}/up", timeout=10).json() == {"status": "ok"}
