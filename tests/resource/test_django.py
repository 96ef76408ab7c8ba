"""Django and Django REST Framework: the middleware, ``@require_scopes`` on sync and async
views, DRF's authentication and permission classes -- with Django's test client and a
live WSGI server on loopback. Tokens come from ``authkestra.testing.LocalIssuer``."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import django
import httpx
import pytest
from django.conf import settings

from authkestra.testing import LocalIssuer

API = "https://orders.test/"
ISSUER = LocalIssuer()


def make_verifier() -> Any:
    """The verifier ``settings.AUTHKESTRA["VERIFIER"]`` names (by dotted path)."""
    return ISSUER.verifier(audience=API)


if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="authkestra-tests-only",
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=__name__,
        MIDDLEWARE=["authkestra.resource.django.AuthkestraMiddleware"],
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "rest_framework"],
        DATABASES={},
        AUTHKESTRA={"VERIFIER": "tests.resource.test_django.make_verifier", "REALM": "orders"},
        REST_FRAMEWORK={
            "EXCEPTION_HANDLER": "authkestra.resource.django.exception_handler",
            "UNAUTHENTICATED_USER": None,
        },
    )
    django.setup()

from django.http import HttpRequest, JsonResponse  # noqa: E402
from django.test import Client  # noqa: E402
from django.urls import path  # noqa: E402
from rest_framework.response import Response  # noqa: E402
from rest_framework.views import APIView  # noqa: E402

from authkestra.resource.django import (  # noqa: E402
    AuthkestraAuthentication,
    HasScopes,
    require_scopes,
)


@require_scopes("orders:read")
def orders(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"client_id": request.access_token.client_id})  # type: ignore[attr-defined]


@require_scopes("orders:write")
async def place(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"placed_by": request.access_token.client_id})  # type: ignore[attr-defined]


def up(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok", "token": request.access_token is not None})  # type: ignore[attr-defined]


class Reports(APIView):
    authentication_classes = (AuthkestraAuthentication,)
    permission_classes = (HasScopes,)
    required_scopes = ("reports:read",)

    def get(self, request: Any) -> Response:
        return Response({"client_id": request.auth.client_id, "user": str(request.user)})


urlpatterns = [
    path("orders", orders),
    path("place", place),
    path("up", up),
    path("reports", Reports.as_view()),
]


def bearer(**claims: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {ISSUER.token(audience=API, **claims)}"}


@pytest.fixture
def client() -> Client:
    return Client()


def test_a_sync_view_with_its_scope(client: Client) -> None:
    answer = client.get("/orders", headers=bearer(scopes=["orders:read"], client_id="billing"))
    assert answer.status_code == 200 and answer.json() == {"client_id": "billing"}
    narrow = client.get("/orders", headers=bearer(scopes=["other"]))
    assert narrow.status_code == 403
    assert narrow["WWW-Authenticate"].startswith(
        'Bearer realm="orders", error="insufficient_scope", scope="orders:read"'
    )
    missing = client.get("/orders")
    assert missing.status_code == 401
    assert missing["WWW-Authenticate"] == (
        'Bearer realm="orders", resource_metadata="https://orders.test/.well-known/'
        'oauth-protected-resource"'
    )


def test_an_async_view(client: Client) -> None:
    answer = client.get("/place", headers=bearer(scopes=["orders:write"], client_id="ops"))
    assert answer.status_code == 200 and answer.json() == {"placed_by": "ops"}
    assert client.get("/place", headers=bearer(scopes=["orders:read"])).status_code == 403


def test_the_middleware_refuses_a_bad_token_anywhere(client: Client) -> None:
    assert client.get("/up").json() == {"status": "ok", "token": False}
    assert client.get("/up", headers=bearer()).json() == {"status": "ok", "token": True}
    expired = client.get("/up", headers=bearer(expires_in=-60))
    assert expired.status_code == 401
    assert 'error="invalid_token"' in expired["WWW-Authenticate"]
    assert client.get("/up", headers={"Authorization": "Bearer"}).status_code == 400
    document = client.get("/.well-known/oauth-protected-resource").json()
    assert document["resource"] == API and document["authorization_servers"] == [ISSUER.issuer]


def test_drf_authentication_and_scope_permission(client: Client) -> None:
    answer = client.get("/reports", headers=bearer(scopes=["reports:read"], client_id="bi"))
    assert answer.status_code == 200 and answer.json() == {"client_id": "bi", "user": "bi"}
    narrow = client.get("/reports", headers=bearer(scopes=["orders:read"]))
    assert narrow.status_code == 403
    assert 'error="insufficient_scope", scope="reports:read"' in narrow["WWW-Authenticate"]
    assert narrow.json()["error"] == "insufficient_scope"
    assert client.get("/reports").status_code == 401


@pytest.fixture
def live_server() -> Iterator[str]:
    from django.core.handlers.wsgi import WSGIHandler
    from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadedWSGIServer(("127.0.0.1", 0), Quiet)
    server.set_app(WSGIHandler())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_over_a_live_server(live_server: str) -> None:
    answer = httpx.get(
        f"{live_server}/orders",
        headers=bearer(scopes=["orders:read"], client_id="live"),
        timeout=10,
    )
    assert answer.status_code == 200 and answer.json() == {"client_id": "live"}
    refused = httpx.get(f"{live_server}/reports", timeout=10)
    assert refused.status_code == 401
    assert json.loads(refused.text)["detail"]


def test_under_asgi_the_middleware_runs_async() -> None:
    """Django's AsyncClient drives the ASGI handler: the middleware's async path, and an
    async view behind it."""
    import asyncio

    from django.test import AsyncClient

    async def run() -> tuple[int, Any, int]:
        client = AsyncClient()
        good = await client.get("/place", headers=bearer(scopes=["orders:write"], client_id="a"))
        bad = await client.get("/up", headers=bearer(expires_in=-60))
        return good.status_code, good.json(), bad.status_code

    status, body, refused = asyncio.run(run())
    assert (status, body, refused) == (200, {"placed_by": "a"}, 401)
