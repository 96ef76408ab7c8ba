"""aiohttp, both sides, over real loopback servers: our client middleware
(``flow.aiohttp_middleware``) calling an aiohttp API protected by
``bearer_token_middleware`` and ``require_scopes``; tokens from a real
``authkestra serve`` (the session's ``our_server``)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from authkestra import ClientCredentialsFlow, ConfigError
from authkestra.flow.events import TokenEvent, TokenEventKind
from authkestra.resource import JWTVerifier
from authkestra.resource.aiohttp import access_token, bearer_token_middleware, require_scopes
from tests.resource.conftest import OurDeployment
from tests.resource.support import AUDIENCE


def api(verifier: Any, refuse_first: set[str] | None = None) -> web.Application:
    @require_scopes("read")
    async def orders(request: web.Request) -> web.Response:
        token = access_token(request)
        return web.json_response({"client_id": token.client_id})

    @require_scopes("admin")
    async def admin(request: web.Request) -> web.Response:
        return web.json_response({})

    async def up(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def flaky(request: web.Request) -> web.Response:
        """401 for the first token it sees (as an API that learnt it was revoked would),
        200 for any other."""
        presented = request.headers.get("Authorization", "")
        assert refuse_first is not None
        if not refuse_first or presented in refuse_first:
            refuse_first.add(presented)
            return web.json_response({"error": "invalid_token"}, status=401)
        refuse_first.add("answered: " + presented)
        return web.json_response({"ok": True})

    app = web.Application(middlewares=[bearer_token_middleware(verifier)])
    app.router.add_get("/orders", orders)
    app.router.add_get("/admin", admin)
    app.router.add_get("/up", up)
    app.router.add_get("/flaky", flaky)
    return app


def run_with_api(app: web.Application, work: Callable[[str], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        try:
            return await work(f"http://127.0.0.1:{port}")
        finally:
            await runner.cleanup()

    return asyncio.run(main())


def flow_of(deployment: OurDeployment, **options: Any) -> ClientCredentialsFlow:
    return ClientCredentialsFlow(
        deployment.client_id, deployment.secret, deployment.server.token_url,
        resource=AUDIENCE, **options,
    )  # fmt: skip


def verifier_of(deployment: OurDeployment) -> JWTVerifier:
    return JWTVerifier(issuer=deployment.issuer, audience=AUDIENCE, allow_insecure_http=True)


def test_the_client_middleware_calls_a_protected_aiohttp_api(our_server: OurDeployment) -> None:
    flow = flow_of(our_server)

    async def work(base: str) -> None:
        async with aiohttp.ClientSession(middlewares=(flow.aiohttp_middleware(["read"]),)) as s:
            async with s.get(f"{base}/orders") as answer:
                assert answer.status == 200
                assert await answer.json() == {"client_id": our_server.client_id}
            async with s.get(f"{base}/admin") as answer:
                assert answer.status == 403
                assert 'scope="admin"' in answer.headers["WWW-Authenticate"]
        async with aiohttp.ClientSession() as plain:
            async with plain.get(f"{base}/orders") as answer:
                assert answer.status == 401
                assert answer.headers["WWW-Authenticate"].startswith("Bearer")
            async with plain.get(f"{base}/up") as answer:
                assert answer.status == 200  # no token, no require_scopes: served
            bad = {"Authorization": "Bearer not.a.token"}
            async with plain.get(f"{base}/up", headers=bad) as answer:
                assert answer.status == 401  # a bad token is refused wherever it goes
            async with plain.get(f"{base}/.well-known/oauth-protected-resource") as answer:
                assert (await answer.json())["resource"] == AUDIENCE

    run_with_api(api(verifier_of(our_server)), work)


def test_a_401_gets_one_retry_with_a_fresh_token(our_server: OurDeployment) -> None:
    events: list[TokenEvent] = []
    flow = flow_of(our_server, on_event=events.append)
    seen: set[str] = set()

    async def work(base: str) -> int:
        middlewares = (flow.aiohttp_middleware(["read"]),)
        async with (
            aiohttp.ClientSession(middlewares=middlewares) as s,
            s.get(f"{base}/flaky") as answer,
        ):
            return answer.status

    assert run_with_api(api(verifier_of(our_server), seen), work) == 200
    acquired = [e for e in events if e.kind is TokenEventKind.ACQUIRED]
    assert len(acquired) == 2 and len(seen) == 2  # the refused token, then a fresh one


def test_require_scopes_needs_the_middleware() -> None:
    @require_scopes("read")
    async def orders(request: web.Request) -> web.Response:
        return web.json_response({})

    app = web.Application()
    app.router.add_get("/orders", orders)

    async def work(base: str) -> int:
        async with aiohttp.ClientSession() as s, s.get(f"{base}/orders") as answer:
            return answer.status

    assert run_with_api(app, work) == 500  # the ConfigError, in aiohttp's log
    with pytest.raises(ConfigError, match="give a verifier"):
        bearer_token_middleware(None)  # type: ignore[arg-type]


def test_dpop_bound_tokens_on_both_sides(our_server: OurDeployment) -> None:
    """The client middleware proves possession on every request; the server middleware
    checks the proof against the URL it reached."""
    flow = flow_of(our_server, dpop=True)

    async def work(base: str) -> None:
        async with aiohttp.ClientSession(middlewares=(flow.aiohttp_middleware(["read"]),)) as s:
            for _ in range(2):  # a new proof each time (a replayed one would be refused)
                async with s.get(f"{base}/orders") as answer:
                    assert answer.status == 200, await answer.text()
        token = await flow.get_token(["read"])
        assert token.token_type == "DPoP"
        async with aiohttp.ClientSession() as plain:
            stolen = {"Authorization": f"DPoP {token.access_token}"}
            async with plain.get(f"{base}/orders", headers=stolen) as answer:
                assert answer.status == 401  # no proof: the token alone is not enough

    run_with_api(api(verifier_of(our_server)), work)
