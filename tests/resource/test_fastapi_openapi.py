"""FastAPI, native: the guard is a security dependency OpenAPI knows, ``Security`` scopes
work, and a route without a verifier stops the app at start-up.

Tokens come from a real ``authkestra serve`` (the session's ``our_server``); requests
go through httpx's ASGI transport, inside the app's lifespan.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import httpx
import pytest
from fastapi import Depends, FastAPI, Security

from authkestra import ConfigError
from authkestra.resource import AccessToken, JWTVerifier
from authkestra.resource.fastapi import ClientCredentialsScheme, require_scopes, use_authkestra
from tests.resource.conftest import OurDeployment
from tests.resource.support import AUDIENCE


def serve(app: FastAPI, work: Callable[[httpx.AsyncClient], Awaitable[Any]]) -> Any:
    """Run ``work`` with a client of ``app``, inside the app's lifespan (start-up first)."""

    async def run() -> Any:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as c:
                return await work(c)

    return anyio.run(run)


def token_for(deployment: OurDeployment, scope: str) -> str:
    answer = httpx.post(
        deployment.server.token_url,
        data={"grant_type": "client_credentials", "scope": scope},
        auth=(deployment.client_id, deployment.secret),
        timeout=10,
    )
    answer.raise_for_status()
    return str(answer.json()["access_token"])


def orders_app(
    deployment: OurDeployment, scheme: ClientCredentialsScheme, **options: Any
) -> FastAPI:
    app = FastAPI()
    verifier = JWTVerifier(issuer=deployment.issuer, audience=AUDIENCE, allow_insecure_http=True)

    @app.get("/orders")
    async def orders(
        token: AccessToken = Depends(require_scopes("read", scheme=scheme)),
    ) -> dict[str, Any]:
        return {"client_id": token.client_id}

    @app.post("/orders")
    async def place(
        token: AccessToken = Security(require_scopes(scheme=scheme), scopes=["write"]),
    ) -> dict[str, Any]:
        return {"client_id": token.client_id}

    use_authkestra(app, verifier, scheme=scheme, **options)
    return app


def test_openapi_declares_the_scheme_and_each_routes_scopes(our_server: OurDeployment) -> None:
    scheme = ClientCredentialsScheme(scheme_name="orders-auth")
    app = orders_app(our_server, scheme)
    document = serve(app, lambda c: _json(c.get("/openapi.json")))
    declared = document["components"]["securitySchemes"]["orders-auth"]
    flow = declared["flows"]["clientCredentials"]
    # From the issuer's metadata (RFC 8414), read at start-up.
    assert flow["tokenUrl"] == our_server.server.token_url
    assert {"read", "write"} <= set(flow["scopes"])
    assert document["paths"]["/orders"]["get"]["security"] == [{"orders-auth": ["read"]}]
    assert document["paths"]["/orders"]["post"]["security"] == [{"orders-auth": ["write"]}]


def test_a_given_token_url_is_used_as_it_is(our_server: OurDeployment) -> None:
    scheme = ClientCredentialsScheme()
    app = orders_app(our_server, scheme, token_url="https://auth.example.com/oauth2/token")
    document = serve(app, lambda c: _json(c.get("/openapi.json")))
    flow = document["components"]["securitySchemes"]["OAuth2ClientCredentials"]["flows"][
        "clientCredentials"
    ]
    assert flow["tokenUrl"] == "https://auth.example.com/oauth2/token"


def test_security_scopes_are_required(our_server: OurDeployment) -> None:
    app = orders_app(our_server, ClientCredentialsScheme())
    reader = {"Authorization": f"Bearer {token_for(our_server, 'read')}"}
    writer = {"Authorization": f"Bearer {token_for(our_server, 'read write')}"}

    async def work(client: httpx.AsyncClient) -> None:
        assert (await client.get("/orders", headers=reader)).status_code == 200
        refused = await client.post("/orders", headers=reader)
        assert refused.status_code == 403
        assert 'scope="write"' in refused.headers["www-authenticate"]
        placed = await client.post("/orders", headers=writer)
        assert placed.json() == {"client_id": "billing-service"}

    serve(app, work)


def test_a_route_without_a_verifier_stops_the_app_at_start_up() -> None:
    app = FastAPI()

    @app.get("/reports")
    async def reports(token: AccessToken = Depends(require_scopes("read"))) -> dict[str, Any]:
        return {}

    use_authkestra(app)

    async def nothing(client: httpx.AsyncClient) -> None:
        raise AssertionError("the app started")

    with pytest.raises(ConfigError, match="GET /reports: require_scopes has no verifier"):
        serve(app, nothing)


def test_a_route_with_its_own_verifier_needs_none_from_the_app(our_server: OurDeployment) -> None:
    verifier = JWTVerifier(issuer=our_server.issuer, audience=AUDIENCE, allow_insecure_http=True)
    app = FastAPI()

    @app.get("/reports")
    async def reports(
        token: AccessToken = Depends(require_scopes("read", verifier=verifier)),
    ) -> dict[str, Any]:
        return {"client_id": token.client_id}

    use_authkestra(app, token_url="https://auth.example.com/token")
    headers = {"Authorization": f"Bearer {token_for(our_server, 'read')}"}

    async def work(client: httpx.AsyncClient) -> int:
        return (await client.get("/reports", headers=headers)).status_code

    assert serve(app, work) == 200


async def _json(answer: Awaitable[httpx.Response]) -> Any:
    return (await answer).json()


def test_a_misconfigured_verifier_stops_the_app_too() -> None:
    with pytest.raises(ConfigError, match="verifier must be a JWTVerifier"):
        use_authkestra(FastAPI(), "https://auth.example.com")  # type: ignore[arg-type]
    app = FastAPI()
    app.state.token_verifier = "https://auth.example.com"  # set by hand, wrongly
    use_authkestra(app)

    async def nothing(client: httpx.AsyncClient) -> None:
        raise AssertionError("the app started")

    with pytest.raises(ConfigError, match="not a verifier"):
        serve(app, nothing)
