"""DPoP-bound tokens through each integration: the ASGI middleware, Starlette, FastAPI.

All three check the proof the same way (authkestra.resource.presentation); the
middleware's every refusal is covered in test_dpop_checks.py, these make sure the
framework integrations do not accept what it refuses.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi import Depends, FastAPI
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from authkestra._protocol.dpop import DPoPKey, generate_dpop_key, proof
from authkestra.resource import AccessToken
from authkestra.resource.dpop import DPoPChecker
from authkestra.resource.fastapi import require_scopes
from authkestra.resource.starlette import BearerTokenBackend, on_auth_error, requires_scopes
from tests.resource.conftest import MakeVerifier
from tests.resource.support import TestIssuer
from tests.resource.test_dpop_checks import URL, asgi_app, bound, call, now
from tests.support.clock import FakeClock


def starlette_app(verifier: Any, checker: DPoPChecker) -> Starlette:
    @requires_scopes("read")
    async def orders(request: Request) -> JSONResponse:
        return JSONResponse({"client_id": request.user.access_token.client_id})

    backend = BearerTokenBackend(verifier, dpop=checker)
    return Starlette(
        routes=[Route("/orders", orders, methods=["GET", "POST"])],
        middleware=[Middleware(AuthenticationMiddleware, backend=backend, on_error=on_auth_error)],
    )


def fastapi_app(verifier: Any, checker: DPoPChecker) -> FastAPI:
    app = FastAPI()
    guard = require_scopes("read", verifier=verifier, dpop=checker)

    @app.api_route("/orders", methods=["GET", "POST"])
    async def orders(token: AccessToken = Depends(guard)) -> dict[str, str | None]:
        return {"client_id": token.client_id}

    return app


APPS: dict[str, Callable[[Any, DPoPChecker], Any]] = {
    "middleware": asgi_app,
    "starlette": starlette_app,
    "fastapi": fastapi_app,
}


@pytest.fixture(params=sorted(APPS))
def app(request: pytest.FixtureRequest, make_verifier: MakeVerifier, clock: FakeClock) -> Any:
    return APPS[request.param](make_verifier(), DPoPChecker(clock=clock))


@pytest.fixture
def key() -> DPoPKey:
    return generate_dpop_key()


def challenge_of(response: Any) -> str:
    return str(response.headers["www-authenticate"])


def test_a_bound_token_with_its_proof_passes_once(
    app: Any, issuer: TestIssuer, clock: FakeClock, key: DPoPKey
) -> None:
    raw = bound(issuer, key)
    made = proof(key, "GET", URL, now=now(clock), access_token=raw)
    good = call(app, f"DPoP {raw}", (made,))
    assert good.status_code == 200, good.text
    assert good.json() == {"client_id": "billing-service"}
    replayed = call(app, f"DPoP {raw}", (made,))
    assert replayed.status_code == 401
    assert challenge_of(replayed).startswith('DPoP error="invalid_dpop_proof"')


@pytest.mark.parametrize(
    ("build", "scheme", "reason"),
    [
        (lambda c, r, k: (), "DPoP", "no DPoP proof"),
        (lambda c, r, k: (proof(k, "POST", URL, now=now(c), access_token=r),), "DPoP", "htm"),
        (
            lambda c, r, k: (proof(generate_dpop_key(), "GET", URL, now=now(c), access_token=r),),
            "DPoP",
            "bound to",
        ),
        (
            lambda c, r, k: (proof(k, "GET", URL, now=now(c), access_token=r),),
            "Bearer",
            "DPoP-bound",
        ),
    ],
    ids=["no-proof", "wrong-htm", "other-key", "sent-as-bearer"],
)
def test_a_bound_token_without_a_good_proof_is_refused(
    app: Any,
    issuer: TestIssuer,
    clock: FakeClock,
    key: DPoPKey,
    build: Callable[..., tuple[str, ...]],
    scheme: str,
    reason: str,
) -> None:
    raw = bound(issuer, key)
    response = call(app, f"{scheme} {raw}", build(clock, raw, key))
    assert response.status_code == 401
    assert challenge_of(response).startswith(f'{scheme} error="invalid')
    assert reason in challenge_of(response)


def test_an_unbound_token_as_dpop_is_refused_and_as_bearer_passes(
    app: Any, issuer: TestIssuer, clock: FakeClock, key: DPoPKey
) -> None:
    raw = issuer.token()
    made = proof(key, "GET", URL, now=now(clock), access_token=raw)
    refused = call(app, f"DPoP {raw}", (made,))
    assert refused.status_code == 401
    assert "not DPoP-bound" in challenge_of(refused)
    assert call(app, f"Bearer {raw}").status_code == 200


def test_scopes_are_checked_after_the_proof_with_a_dpop_challenge(
    app: Any, issuer: TestIssuer, clock: FakeClock, key: DPoPKey
) -> None:
    raw = bound(issuer, key, scope="write")
    made = proof(key, "GET", URL, now=now(clock), access_token=raw)
    response = call(app, f"DPoP {raw}", (made,))
    assert response.status_code == 403
    assert challenge_of(response).startswith('DPoP error="insufficient_scope"')


@pytest.mark.parametrize("host", ["api.test/public#", "api.test/public?", "api.test/x/../public#"])
def test_a_host_header_that_moves_the_path_is_refused(
    app: Any, issuer: TestIssuer, clock: FakeClock, key: DPoPKey, host: str
) -> None:
    # The proof names /public; the request goes to /orders with a Host that, pasted into
    # a URL, would turn /orders into a fragment or query of https://api.test/public.
    import anyio
    import httpx

    raw = bound(issuer, key)
    made = proof(key, "GET", "http://api.test/public", now=now(clock), access_token=raw)

    async def run() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
            return await client.get(
                "/orders", headers={"Authorization": f"DPoP {raw}", "DPoP": made, "Host": host}
            )

    response = anyio.run(run)
    assert response.status_code == 401
    assert "Host header" in challenge_of(response)
