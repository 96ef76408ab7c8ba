"""DPoP-bound tokens through each integration: the ASGI middleware, Starlette, FastAPI.

All three check the proof the same way (authkestra.resource.presentation); the
middleware's every refusal is covered in test_dpop_checks.py, these make sure the
framework integrations do not accept what it refuses.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
import pytest
from fastapi import APIRouter, Depends, FastAPI
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from authkestra._protocol.dpop import DPoPKey, generate_dpop_key, proof
from authkestra.resource import AccessToken
from authkestra.resource.asgi import BearerTokenMiddleware
from authkestra.resource.dpop import DPOP_ALGORITHMS, DPoPChecker, InvalidDPoPProof
from authkestra.resource.fastapi import require_scopes
from authkestra.resource.presentation import HOLDER_CHECKED_KEY, Presentation, check_holder_async
from authkestra.resource.starlette import BearerTokenBackend, on_auth_error
from authkestra.resource.starlette import require_scopes as starlette_require_scopes
from tests.resource.conftest import MakeVerifier
from tests.resource.support import TestIssuer
from tests.resource.test_dpop_checks import URL, asgi_app, bound, call, now
from tests.support.clock import FakeClock


def starlette_app(verifier: Any, checker: DPoPChecker) -> Starlette:
    @starlette_require_scopes("read")
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


# -- the proof is checked once per request, however the checks are stacked ----------------


def fastapi_router_app(verifier: Any, checker: DPoPChecker) -> FastAPI:
    """A router that needs a token, and a route on it that needs a scope: two dependencies."""
    router = APIRouter(dependencies=[Depends(require_scopes(verifier=verifier, dpop=checker))])

    @router.api_route("/orders", methods=["GET", "POST"])
    async def orders(
        token: AccessToken = Depends(require_scopes("read", verifier=verifier, dpop=checker)),
    ) -> dict[str, str | None]:
        return {"client_id": token.client_id}

    app = FastAPI()
    app.include_router(router)
    return app


STACKED: dict[str, Callable[[Any, DPoPChecker], Any]] = {
    "fastapi-router-and-route": fastapi_router_app,
    "middleware-and-fastapi": lambda v, c: BearerTokenMiddleware(fastapi_app(v, c), v, dpop=c),
    "middleware-and-starlette": lambda v, c: BearerTokenMiddleware(starlette_app(v, c), v, dpop=c),
}


@pytest.mark.parametrize("stack", sorted(STACKED))
def test_stacked_checks_see_the_proof_once_per_request(
    stack: str, make_verifier: MakeVerifier, issuer: TestIssuer, clock: FakeClock, key: DPoPKey
) -> None:
    # One replay set for both checks, as with the default checker or a shared store.
    app = STACKED[stack](make_verifier(), DPoPChecker(clock=clock))
    raw = bound(issuer, key)
    made = proof(key, "GET", URL, now=now(clock), access_token=raw)
    good = call(app, f"DPoP {raw}", (made,))
    assert good.status_code == 200, good.text
    assert good.json() == {"client_id": "billing-service"}
    replayed = call(app, f"DPoP {raw}", (made,))  # another request: checked again
    assert replayed.status_code == 401
    assert "jti" in challenge_of(replayed)
    assert call(app, f"DPoP {raw}").status_code == 401  # no proof


def test_a_request_checked_for_one_token_is_checked_again_for_another(
    make_verifier: MakeVerifier, issuer: TestIssuer, clock: FakeClock, key: DPoPKey
) -> None:
    verifier = make_verifier()
    checker = DPoPChecker(clock=clock)
    raw = bound(issuer, key)
    made = proof(key, "GET", URL, now=now(clock), access_token=raw)
    other = bound(issuer, generate_dpop_key())

    def headers(token: str) -> list[tuple[bytes, bytes]]:
        return [
            (b"host", b"api.test"),
            (b"authorization", f"DPoP {token}".encode()),
            (b"dpop", made.encode()),
        ]

    scope: dict[str, Any] = {
        "type": "http",
        "method": "GET",
        "scheme": "http",
        "path": "/orders",
        "headers": headers(raw),
    }

    async def check(token: str) -> None:
        presentation = Presentation.from_scope(scope)
        assert presentation is not None
        await check_holder_async(await verifier.verify(token), presentation, checker)

    async def run() -> None:
        await check(raw)
        assert scope[HOLDER_CHECKED_KEY][1] == raw
        await check(raw)  # the same request again: not a replay
        scope["headers"] = headers(other)  # the proof is not for this token
        with pytest.raises(InvalidDPoPProof):
            await check(other)
        del scope[HOLDER_CHECKED_KEY]  # as on another request
        scope["headers"] = headers(raw)
        with pytest.raises(InvalidDPoPProof, match="jti"):
            await check(raw)

    anyio.run(run)


def test_a_second_checker_on_the_same_request_checks_for_itself(
    make_verifier: MakeVerifier, issuer: TestIssuer, clock: FakeClock, key: DPoPKey
) -> None:
    """What one checker accepted does not excuse the proof before a stricter one."""
    verifier = make_verifier()
    raw = bound(issuer, key)
    made = proof(key, "GET", URL, now=now(clock), access_token=raw)
    lenient = DPoPChecker(clock=clock)
    strict = DPoPChecker(clock=clock, algorithms=[a for a in DPOP_ALGORITHMS if a != "ES256"])
    app = BearerTokenMiddleware(fastapi_app(verifier, strict), verifier, dpop=lenient)
    refused = call(app, f"DPoP {raw}", (made,))
    assert refused.status_code == 401
    assert "invalid_dpop_proof" in challenge_of(refused)
