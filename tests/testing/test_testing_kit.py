"""``authkestra.testing``: tokens a test chooses, accepted by a real verifier in each
framework, and a token endpoint a real flow talks to -- no server running."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import anyio
import httpx
import pytest
from fastapi import Depends, FastAPI
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from authkestra import ConfigError, InvalidClient, InvalidToken
from authkestra.resource import AccessToken
from authkestra.resource.asgi import BearerTokenMiddleware
from authkestra.resource.fastapi import require_scopes, use_authkestra
from authkestra.resource.starlette import BearerTokenBackend, on_auth_error
from authkestra.resource.starlette import require_scopes as starlette_require_scopes
from authkestra.testing import LocalIssuer

pytest_plugins = ["pytester"]

API = "https://orders.test/"


def get(app: Any, token: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}

    async def call() -> httpx.Response:
        async with app.router.lifespan_context(app) if hasattr(app, "router") else _NoLifespan():
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as c:
                return await c.get("/orders", headers=headers)

    return anyio.run(call)


class _NoLifespan:
    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *args: object) -> None:
        return None


def fastapi_app(issuer: LocalIssuer) -> Any:
    app = FastAPI()

    @app.get("/orders")
    async def orders(token: AccessToken = Depends(require_scopes("orders:read"))) -> dict[str, Any]:
        return {"client_id": token.client_id}

    use_authkestra(app, issuer.verifier(audience=API))
    return app


def starlette_app(issuer: LocalIssuer) -> Any:
    @starlette_require_scopes("orders:read")
    async def orders(request: Request) -> JSONResponse:
        return JSONResponse({"client_id": request.user.access_token.client_id})

    return Starlette(
        routes=[Route("/orders", orders)],
        middleware=[
            Middleware(
                AuthenticationMiddleware,
                backend=BearerTokenBackend(issuer.verifier(audience=API)),
                on_error=on_auth_error,
            )
        ],
    )


def asgi_app(issuer: LocalIssuer) -> Any:
    async def inner(scope: Any, receive: Any, send: Any) -> None:
        body = b'{"client_id": "%s"}' % scope["authkestra.access_token"].client_id.encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})  # fmt: skip
        await send({"type": "http.response.body", "body": body})

    return BearerTokenMiddleware(inner, issuer.verifier(audience=API), scopes=["orders:read"])


APPS: dict[str, Callable[[LocalIssuer], Any]] = {
    "fastapi": fastapi_app,
    "starlette": starlette_app,
    "asgi": asgi_app,
}


@pytest.mark.parametrize("framework", list(APPS))
def test_a_minted_token_opens_a_protected_route(
    framework: str, authkestra_issuer: LocalIssuer, make_token: Callable[..., str]
) -> None:
    app = APPS[framework](authkestra_issuer)
    granted = make_token(scopes=["orders:read"], audience=API, client_id="billing")
    assert get(app, granted).json() == {"client_id": "billing"}
    assert get(app, make_token(scopes=["other"], audience=API)).status_code == 403
    assert (
        get(app, make_token(scopes=["orders:read"], audience=API, expires_in=-60)).status_code
        == 401
    )
    assert (
        get(app, make_token(scopes=["orders:read"], audience="https://else.test/")).status_code
        == 401
    )
    assert get(app, None).status_code == 401


def test_a_token_of_another_issuer_is_refused(authkestra_issuer: LocalIssuer) -> None:
    stranger = LocalIssuer()  # the same issuer URL, another key
    verifier = authkestra_issuer.verifier(audience=API)
    with pytest.raises(InvalidToken):
        verifier.verify_sync(stranger.token(audience=API))
    assert verifier.verify_sync(authkestra_issuer.token(audience=API)).client_id == "test-client"


def test_claims_can_be_set_and_removed(make_token: Callable[..., str]) -> None:
    issuer = LocalIssuer(alg="EdDSA")
    verifier = issuer.verifier(audience=API)
    access = verifier.verify_sync(issuer.token(audience=API, subject="someone", tenant="acme"))
    assert access.subject == "someone" and access.claims["tenant"] == "acme"
    with pytest.raises(InvalidToken):
        verifier.verify_sync(issuer.token(audience=API, jti=None))  # RFC 9068 wants a jti
    assert make_token().count(".") == 2


def test_the_flow_gets_tokens_from_the_local_token_endpoint() -> None:
    issuer = LocalIssuer(clients={"billing": "s3cret-billing"}, scopes=["orders:read"])
    flow = issuer.flow("billing", "s3cret-billing")
    token = flow.get_token_sync()
    assert token.scope == "orders:read"
    assert issuer.verifier(audience=f"{issuer.issuer}/").verify_sync(token.access_token)
    asyncio.run(flow.get_token(["orders:write"], force_refresh=True))
    assert [form["scope"] for _, form in issuer.token_requests[1:]] == [["orders:write"]]
    with pytest.raises(InvalidClient):
        issuer.flow("billing", "wrong-secret").get_token_sync()


def test_settings_that_cannot_work() -> None:
    with pytest.raises(ConfigError, match="https URL"):
        LocalIssuer("http://issuer.test")


def test_the_pytest_plugin_gives_the_fixtures(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_uses_them(authkestra_issuer, make_token):
            token = make_token(scopes=["read"], audience="https://api.test/")
            verifier = authkestra_issuer.verifier(audience="https://api.test/")
            assert verifier.verify_sync(token).scopes == ("read",)
        """
    )
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)
