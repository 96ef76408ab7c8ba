"""FastAPI, Starlette and plain ASGI: RFC 6750 answers, and the verified token for the handler.

Every app protects ``GET /orders`` with the scope ``read`` and answers who called;
requests go through httpx's ASGI transport.
"""

from __future__ import annotations

import json
from collections.abc import Callable, MutableMapping
from typing import Any

import anyio
import httpx
import pytest
from fastapi import Depends, FastAPI
from starlette.applications import Starlette
from starlette.authentication import requires
from starlette.endpoints import HTTPEndpoint
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from authkestra import ConfigError
from authkestra.resource import AccessToken, JWTVerifier
from authkestra.resource.asgi import ACCESS_TOKEN_KEY, BearerTokenMiddleware
from authkestra.resource.fastapi import require_scopes
from authkestra.resource.protected_resource import ResourceMetadata, serve_resource_metadata
from authkestra.resource.rfc6750 import MalformedAuthorization, authorization_token, bearer_token
from authkestra.resource.starlette import (
    BearerTokenBackend,
    TokenUser,
    on_auth_error,
)
from authkestra.resource.starlette import require_scopes as starlette_require_scopes
from tests.resource.conftest import MakeVerifier
from tests.resource.support import DROP, TestIssuer, sign_compact
from tests.support.clock import FakeClock
from tests.support.redis_server import free_port

MakeApp = Callable[[Any], Any]


def who(token: AccessToken) -> dict[str, Any]:
    return {"client_id": token.client_id, "scopes": list(token.scopes)}


#: Every app of these tests serves its RFC 9728 metadata, and its challenges name it.
METADATA = 'resource_metadata="https://api.example.test/.well-known/oauth-protected-resource"'


def fastapi_app(verifier: Any) -> FastAPI:
    app = FastAPI()
    app.state.token_verifier = verifier
    serve_resource_metadata(app, ResourceMetadata.for_verifier(verifier))

    @app.get("/orders")
    async def orders(token: AccessToken = Depends(require_scopes("read"))) -> dict[str, Any]:
        return who(token)

    @app.get("/up")
    async def up() -> dict[str, str]:
        return {"status": "ok"}

    return app


def starlette_app(verifier: Any) -> Starlette:
    @starlette_require_scopes("read")
    async def orders(request: Request) -> Response:
        user = request.user
        assert isinstance(user, TokenUser)
        assert "read" in request.auth.scopes and "authenticated" in request.auth.scopes
        return JSONResponse(who(user.access_token))

    async def up(request: Request) -> Response:
        return JSONResponse({"status": "ok", "user": request.user.is_authenticated})

    app = Starlette(
        routes=[Route("/orders", orders), Route("/up", up)],
        middleware=[
            Middleware(
                AuthenticationMiddleware,
                backend=BearerTokenBackend(verifier),
                on_error=on_auth_error,
            )
        ],
    )
    serve_resource_metadata(app, ResourceMetadata.for_verifier(verifier))
    return app


def asgi_app(verifier: Any) -> BearerTokenMiddleware:
    async def inner(
        scope: MutableMapping[str, Any], receive: Any, send: Callable[..., Any]
    ) -> None:
        if scope["path"] == "/up":
            body = {"status": "ok"}
        else:
            token = scope[ACCESS_TOKEN_KEY]
            assert scope["state"]["access_token"] is token
            body = who(token)
        payload = json.dumps(body).encode()
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    return BearerTokenMiddleware(inner, verifier, scopes=["read"], exempt_paths=["/up"])


APPS = {"fastapi": fastapi_app, "starlette": starlette_app, "asgi": asgi_app}


def get(
    app: Any,
    path: str,
    authorization: str | None = None,
    *,
    headers: list[tuple[str, str]] | None = None,
) -> httpx.Response:
    """GET ``path``; ``headers`` as a list may repeat a name (two Authorization headers)."""
    sent = list(headers or [])
    if authorization is not None:
        sent.append(("Authorization", authorization))

    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
            return await client.get(path, headers=sent)

    return anyio.run(call)


def error_body(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    return body.get("detail", body)  # type: ignore[no-any-return]  # FastAPI nests it


@pytest.fixture(params=list(APPS))
def make_app(request: pytest.FixtureRequest) -> MakeApp:
    return APPS[request.param]


def test_a_valid_token_reaches_the_handler(
    issuer: TestIssuer, make_verifier: MakeVerifier, make_app: MakeApp
) -> None:
    app = make_app(make_verifier())
    for scheme in ("Bearer", "bearer", "BEARER"):
        response = get(app, "/orders", f"{scheme} {issuer.token(scope='read write')}")
        assert response.status_code == 200, response.text
        assert response.json() == {"client_id": "billing-service", "scopes": ["read", "write"]}
    assert issuer.jwks_requests == 1


@pytest.mark.parametrize("authorization", [None, "", "Basic dXNlcjpwdw==", "Token abc"])
def test_no_bearer_token_is_401_without_an_error_code(
    make_verifier: MakeVerifier, make_app: MakeApp, authorization: str | None
) -> None:
    response = get(make_app(make_verifier()), "/orders", authorization)
    assert response.status_code == 401
    # RFC 6750 §3.1: no error code; RFC 9728 §5.1: where the metadata is.
    assert response.headers["www-authenticate"] == f"Bearer {METADATA}"
    body = error_body(response)
    assert "error" not in body, body  # nor in the body
    assert body == {"error_description": "this resource needs an access token"}


MALFORMED = 'Bearer error="invalid_request", error_description="'


@pytest.mark.parametrize(
    "authorizations",
    [
        ["Bearer {token}", "Bearer {token}"],
        ["Bearer {token}", "Bearer garbage"],
        ["Basic dXNlcjpwdw==", "Bearer {token}"],
        ["Bearer {token}", ""],
    ],
    ids=["same-twice", "two-tokens", "basic-and-bearer", "one-empty"],
)
def test_two_authorization_headers_are_400_invalid_request(
    issuer: TestIssuer, make_verifier: MakeVerifier, make_app: MakeApp, authorizations: list[str]
) -> None:
    token = issuer.token(scope="read")
    headers = [("Authorization", value.format(token=token)) for value in authorizations]
    response = get(make_app(make_verifier()), "/orders", headers=headers)
    assert response.status_code == 400, response.text
    assert response.headers["www-authenticate"] == (
        MALFORMED + f'more than one Authorization header was sent", {METADATA}'
    )
    assert error_body(response) == {
        "error": "invalid_request",
        "error_description": "more than one Authorization header was sent",
    }
    assert issuer.jwks_requests == 0  # refused before any token was looked at


@pytest.mark.parametrize("authorization", ["Bearer", "Bearer   ", "bearer "])
def test_the_scheme_without_a_token_is_400_invalid_request(
    make_verifier: MakeVerifier, make_app: MakeApp, authorization: str
) -> None:
    """RFC 6750 §3.1: a malformed request (not a missing token: that has no error code)."""
    response = get(make_app(make_verifier()), "/orders", authorization)
    assert response.status_code == 400, response.text
    assert response.headers["www-authenticate"].startswith(MALFORMED)
    assert error_body(response)["error"] == "invalid_request"


@pytest.mark.parametrize(
    "authorization",
    ["Bearer abc def", "Bearer {token} {token}", "bearer {token}\tx", "Bearer \t{token}"],
)
def test_whitespace_inside_the_token_is_400_invalid_request(
    issuer: TestIssuer, make_verifier: MakeVerifier, make_app: MakeApp, authorization: str
) -> None:
    value = authorization.format(token=issuer.token(scope="read"))
    response = get(make_app(make_verifier()), "/orders", value)
    assert response.status_code == 400, response.text
    assert response.headers["www-authenticate"].startswith(MALFORMED)
    assert error_body(response)["error"] == "invalid_request"
    assert issuer.jwks_requests == 0


def test_a_dpop_token_with_whitespace_inside_is_answered_in_the_dpop_scheme(
    make_verifier: MakeVerifier, make_app: MakeApp
) -> None:
    response = get(make_app(make_verifier()), "/orders", "DPoP abc def")
    assert response.status_code == 400
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith('DPoP error="invalid_request", error_description="'), challenge
    assert error_body(response)["error"] == "invalid_request"


def test_spaces_between_the_scheme_and_the_token_are_tolerated(
    issuer: TestIssuer, make_verifier: MakeVerifier, make_app: MakeApp
) -> None:
    app = make_app(make_verifier())
    for authorization in (f"Bearer  {issuer.token()}", f"  Bearer   {issuer.token()}  "):
        assert get(app, "/orders", authorization).status_code == 200


@pytest.mark.parametrize(
    ("authorization", "expected"),
    [
        (None, None),
        ("", None),
        ("Basic a b", None),
        ("Bearer", "no token"),
        ("Bearer   ", "no token"),
        ("DPoP", "no token"),
        ("Bearer abc", ("Bearer", "abc")),
        ("Bearer  abc ", ("Bearer", "abc")),
        ("dpop abc", ("DPoP", "abc")),
        ("Bearer abc def", "whitespace inside"),
        ("Bearer abc\tdef", "whitespace inside"),
        ("DPoP abc def", "whitespace inside"),
    ],
)
def test_authorization_token_parsing(authorization: str | None, expected: object) -> None:
    if isinstance(expected, str):  # malformed: what the refusal says
        with pytest.raises(MalformedAuthorization, match=expected):
            authorization_token(authorization)
        with pytest.raises(MalformedAuthorization):
            bearer_token(authorization)
        return
    assert authorization_token(authorization) == expected
    token = expected[1] if isinstance(expected, tuple) and expected[0] == "Bearer" else None
    assert bearer_token(authorization) == token


@pytest.mark.parametrize(
    "build",
    [
        lambda i: "not-a-jwt",
        lambda i: i.token(aud="https://other.test/"),
        lambda i: i.token(exp=int(i.clock.now().timestamp()) - 100, iat=0),
        lambda i: i.token("attacker-es"),
        lambda i: i.token(header={"alg": 'x", error="fake\\'}),
        lambda i: i.token(header={"typ": DROP}),
    ],
    ids=["garbage", "audience", "expired", "unknown-key", "quote-injection", "no-typ"],
)
def test_an_invalid_token_is_401_invalid_token(
    issuer: TestIssuer,
    make_verifier: MakeVerifier,
    make_app: MakeApp,
    build: Callable[[TestIssuer], str],
) -> None:
    response = get(make_app(make_verifier()), "/orders", f"Bearer {build(issuer)}")
    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith('Bearer error="invalid_token", error_description="')
    assert challenge.count('"') == 6 and "\\" not in challenge  # nothing injected
    assert error_body(response)["error"] == "invalid_token"


def test_a_token_without_the_scope_is_403_insufficient_scope(
    issuer: TestIssuer, make_verifier: MakeVerifier, make_app: MakeApp
) -> None:
    for scope in ("write", DROP):
        response = get(make_app(make_verifier()), "/orders", f"Bearer {issuer.token(scope=scope)}")
        assert response.status_code == 403
        assert response.headers["www-authenticate"] == (
            f'Bearer error="insufficient_scope", scope="read", {METADATA}'
        )
        body = error_body(response)
        assert body["error"] == "insufficient_scope"
        assert body["scope"] == "read"


def test_the_issuer_unreachable_with_no_keys_is_503(
    issuer: TestIssuer, make_verifier: MakeVerifier, make_app: MakeApp
) -> None:
    verifier = make_verifier(jwks_url=f"http://127.0.0.1:{free_port()}/jwks")
    response = get(make_app(verifier), "/orders", f"Bearer {issuer.token()}")
    assert response.status_code == 503
    assert "www-authenticate" not in response.headers
    assert error_body(response)["error"] == "temporarily_unavailable"
    # Garbage is still the caller's fault, issuer or not.
    assert get(make_app(verifier), "/orders", "Bearer x.y.z").status_code == 401


def test_the_issuer_failing_with_no_keys_is_503(
    issuer: TestIssuer, make_verifier: MakeVerifier, make_app: MakeApp
) -> None:
    from tests.support.hostile_server import Reply

    issuer.jwks_reply = Reply(200, "<html>")
    response = get(make_app(make_verifier()), "/orders", f"Bearer {issuer.token()}")
    assert response.status_code == 503


def test_stale_keys_serve_while_the_issuer_is_down(
    issuer: TestIssuer, make_verifier: MakeVerifier, make_app: MakeApp, clock: FakeClock
) -> None:
    from tests.support.hostile_server import Reply

    app = make_app(make_verifier(jwks_max_age=60))
    assert get(app, "/orders", f"Bearer {issuer.token()}").status_code == 200
    issuer.jwks_reply = Reply(behaviour="close")
    clock.advance(3600)
    assert get(app, "/orders", f"Bearer {issuer.token()}").status_code == 200


def test_unprotected_routes_need_no_token(make_verifier: MakeVerifier, make_app: MakeApp) -> None:
    response = get(make_app(make_verifier()), "/up")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


# -- per framework -----------------------------------------------------------------------


def test_fastapi_verifier_argument_and_realm(
    issuer: TestIssuer, make_verifier: MakeVerifier
) -> None:
    app = FastAPI()
    verifier = make_verifier()

    @app.get("/admin")
    async def admin(
        token: AccessToken = Depends(
            require_scopes("admin", "read", verifier=verifier, realm="orders")
        ),
    ) -> dict[str, Any]:
        return who(token)

    response = get(app, "/admin", f"Bearer {issuer.token(scope='read')}")
    assert response.status_code == 403
    assert response.headers["www-authenticate"] == (
        'Bearer realm="orders", error="insufficient_scope", scope="admin read"'
    )
    assert get(app, "/admin", f"Bearer {issuer.token(scope='admin read')}").status_code == 200
    assert get(app, "/admin").headers["www-authenticate"] == 'Bearer realm="orders"'


def test_fastapi_without_a_verifier_is_a_config_error() -> None:
    app = FastAPI()

    @app.get("/orders")
    async def orders(token: AccessToken = Depends(require_scopes("read"))) -> dict[str, Any]:
        return who(token)

    async def call() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
            await client.get("/orders", headers={"Authorization": "Bearer x"})

    with pytest.raises(ConfigError, match="token_verifier"):
        anyio.run(call)


def test_starlette_own_requires_works_with_the_backend(
    issuer: TestIssuer, make_verifier: MakeVerifier
) -> None:
    @requires("write")
    async def write(request: Request) -> Response:
        return JSONResponse({"ok": True})

    app = Starlette(
        routes=[Route("/write", write)],
        middleware=[
            Middleware(
                AuthenticationMiddleware,
                backend=BearerTokenBackend(make_verifier()),
                on_error=on_auth_error,
            )
        ],
    )
    assert get(app, "/write", f"Bearer {issuer.token(scope='write')}").status_code == 200
    assert get(app, "/write", f"Bearer {issuer.token(scope='read')}").status_code == 403
    assert get(app, "/write", "Bearer garbage").status_code == 401


def test_asgi_websocket_without_a_valid_token_is_closed(
    issuer: TestIssuer, make_verifier: MakeVerifier
) -> None:
    reached: list[Any] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        reached.append(scope[ACCESS_TOKEN_KEY])

    app = BearerTokenMiddleware(inner, make_verifier(), scopes=["read"])
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    def scope(authorization: str) -> dict[str, Any]:
        return {
            "type": "websocket",
            "path": "/ws",
            "headers": [(b"authorization", authorization.encode())],
        }

    anyio.run(app, scope("Bearer garbage"), receive, send)
    assert sent == [{"type": "websocket.close", "code": 1008}]
    twice = scope(f"Bearer {issuer.token(scope='read')}")
    twice["headers"] *= 2
    for malformed in (twice, scope("Bearer abc def")):  # 400 invalid_request over HTTP
        sent.clear()
        anyio.run(app, malformed, receive, send)
        assert sent == [{"type": "websocket.close", "code": 1008}]
    assert reached == []
    anyio.run(app, scope(f"Bearer {issuer.token(scope='read')}"), receive, send)
    assert len(reached) == 1 and reached[0].client_id == "billing-service"


def test_asgi_lifespan_passes_through(make_verifier: MakeVerifier) -> None:
    seen: list[str] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["type"])

    app = BearerTokenMiddleware(inner, make_verifier())

    async def nothing() -> dict[str, Any]:
        return {}

    async def ignore(message: Any) -> None:
        return None

    anyio.run(app, {"type": "lifespan"}, nothing, ignore)
    assert seen == ["lifespan"]


def test_any_verifier_with_async_verify_plugs_in(issuer: TestIssuer, clock: FakeClock) -> None:
    jwt_verifier = JWTVerifier(
        issuer=issuer.url,
        audience="https://api.example.test/",
        jwks_url=issuer.jwks_url,
        clock=clock,
    )

    class Stub:
        calls = 0

        async def verify(self, token: str) -> AccessToken:
            Stub.calls += 1
            return await jwt_verifier.verify(token)

    app = asgi_app(Stub())
    assert get(app, "/orders", f"Bearer {issuer.token()}").status_code == 200
    assert Stub.calls == 1
    forged = sign_compact({"alg": "none"}, issuer.claims(), None)
    assert get(app, "/orders", f"Bearer {forged}").status_code == 401
    assert Stub.calls == 2


# -- settings refused when the integration is set up ---------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {"scopes": "read"},  # a string is no list: it would demand r, e, a, d
        {"scopes": ["read", ""]},
        {"scopes": [["read"]]},
        {"scopes": ["read write"]},
        {"exempt_paths": "/healthz"},  # it would exempt "/" (and "h", "e", ...)
        {"exempt_paths": ["healthz"]},
        {"exempt_paths": [None]},
    ],
)
def test_middleware_settings_that_cannot_work_are_config_errors(
    make_verifier: MakeVerifier, options: dict[str, Any]
) -> None:
    async def inner(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("not reached")

    with pytest.raises(ConfigError):
        BearerTokenMiddleware(inner, make_verifier(), **options)


@pytest.mark.parametrize(
    "scopes", [(["read"],), ("read", ""), ("",), ("read write",), ("read", None), (("read",),)]
)
def test_scope_arguments_that_are_not_one_scope_are_config_errors(scopes: tuple[Any, ...]) -> None:
    with pytest.raises(ConfigError, match="scope"):
        require_scopes(*scopes)
    with pytest.raises(ConfigError, match="scope"):
        starlette_require_scopes(*scopes)


# -- Starlette's require_scopes on every kind of endpoint ---------------------------------


def starlette_endpoints(verifier: Any) -> Starlette:
    """``starlette_require_scopes("read")`` on a sync function, an HTTPEndpoint and a WebSocket."""

    @starlette_require_scopes("read")
    def sync_orders(request: Request) -> Response:
        return JSONResponse(who(request.user.access_token))

    class Orders(HTTPEndpoint):
        @starlette_require_scopes("read")
        async def get(self, request: Request) -> Response:
            return JSONResponse(who(request.user.access_token))

        @starlette_require_scopes("read")
        def post(self, request: Request) -> Response:
            return JSONResponse(who(request.user.access_token))

    @starlette_require_scopes("read")
    async def feed(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(websocket.user.access_token.client_id)
        await websocket.close()

    return Starlette(
        routes=[
            Route("/sync", sync_orders),
            Route("/endpoint", Orders, methods=["GET", "POST"]),
            WebSocketRoute("/ws", feed),
        ],
        middleware=[
            Middleware(
                AuthenticationMiddleware,
                backend=BearerTokenBackend(verifier),
                on_error=on_auth_error,
            )
        ],
    )


def request(app: Any, method: str, path: str, authorization: str | None) -> httpx.Response:
    headers = {"Authorization": authorization} if authorization else {}

    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
            return await client.request(method, path, headers=headers)

    return anyio.run(call)


@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/sync"), ("GET", "/endpoint"), ("POST", "/endpoint")]
)
def test_starlette_require_scopes_on_sync_functions_and_endpoint_methods(
    issuer: TestIssuer, make_verifier: MakeVerifier, method: str, path: str
) -> None:
    app = starlette_endpoints(make_verifier())
    valid = request(app, method, path, f"Bearer {issuer.token(scope='read')}")
    assert valid.status_code == 200, valid.text
    assert valid.json() == {"client_id": "billing-service", "scopes": ["read"]}
    none = request(app, method, path, None)
    assert none.status_code == 401
    assert none.headers["www-authenticate"] == "Bearer"
    lacking = request(app, method, path, f"Bearer {issuer.token(scope='write')}")
    assert lacking.status_code == 403
    assert lacking.headers["www-authenticate"] == (
        'Bearer error="insufficient_scope", scope="read"'
    )


def open_websocket(app: Any, authorization: str | None = None) -> tuple[Any, ...]:
    """Open a WebSocket to ``/ws``: ``("closed", code, reason)`` or ``("accepted", first text)``.

    Driven by hand rather than with TestClient, which waits forever for an app that
    returns without accepting or closing: here that app fails the test, within 5 seconds.
    """
    headers = [(b"host", b"api.test")]
    if authorization is not None:
        headers.append((b"authorization", authorization.encode()))
    scope = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "scheme": "ws",
        "server": ("api.test", 80),
        "client": ("127.0.0.1", 50000),
        "root_path": "",
        "path": "/ws",
        "raw_path": b"/ws",
        "query_string": b"",
        "headers": headers,
        "subprotocols": [],
    }
    sent: list[dict[str, Any]] = []

    async def run() -> None:
        answered = anyio.Event()
        connected = False

        async def receive() -> dict[str, Any]:
            nonlocal connected
            if not connected:
                connected = True
                return {"type": "websocket.connect"}
            await answered.wait()
            return {"type": "websocket.disconnect", "code": 1000}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)
            if message["type"] in ("websocket.close", "websocket.send"):
                answered.set()

        with anyio.fail_after(5):
            await app(scope, receive, send)

    anyio.run(run)
    assert sent, "the app neither accepted nor closed the WebSocket"
    if sent[0]["type"] == "websocket.close":
        return ("closed", sent[0]["code"], sent[0].get("reason", ""))
    assert sent[0]["type"] == "websocket.accept", sent
    assert sent[1]["type"] == "websocket.send", sent
    return ("accepted", sent[1]["text"])


def test_starlette_require_scopes_on_a_websocket(
    issuer: TestIssuer, make_verifier: MakeVerifier
) -> None:
    app = starlette_endpoints(make_verifier())
    assert open_websocket(app) == ("closed", 1008, "this resource needs an access token")
    lacking = open_websocket(app, f"Bearer {issuer.token(scope='write')}")
    assert lacking[:2] == ("closed", 1008)
    assert lacking[2].startswith("insufficient_scope: ")
    valid = open_websocket(app, f"Bearer {issuer.token(scope='read')}")
    assert valid == ("accepted", "billing-service")


# -- FastAPI's require_scopes on a WebSocket route -----------------------------------------


def test_fastapi_require_scopes_on_a_websocket(
    issuer: TestIssuer, make_verifier: MakeVerifier
) -> None:
    app = FastAPI()
    app.state.token_verifier = make_verifier()

    @app.websocket("/ws")
    async def feed(
        websocket: WebSocket, token: AccessToken = Depends(require_scopes("read"))
    ) -> None:
        await websocket.accept()
        await websocket.send_text(token.client_id or "")
        await websocket.close()

    valid = open_websocket(app, f"Bearer {issuer.token(scope='read')}")
    assert valid == ("accepted", "billing-service")
    assert open_websocket(app) == ("closed", 1008, "this resource needs an access token")
    refused = {
        "invalid_token: ": "Bearer garbage",
        "insufficient_scope: ": f"Bearer {issuer.token(scope='write')}",
        "invalid_request: ": "Bearer abc def",
    }
    for reason, authorization in refused.items():
        closed = open_websocket(app, authorization)
        assert closed[:2] == ("closed", 1008), closed
        assert closed[2].startswith(reason), closed


# -- RFC 9728: the metadata itself -----------------------------------------------------------


def test_every_app_serves_its_metadata_without_a_token(
    issuer: TestIssuer, make_verifier: MakeVerifier, make_app: MakeApp
) -> None:
    response = get(make_app(make_verifier()), "/.well-known/oauth-protected-resource")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    document = response.json()
    assert document["resource"] == "https://api.example.test/"
    assert document["authorization_servers"] == [issuer.url]
    assert document["bearer_methods_supported"] == ["header"]
    assert document["dpop_bound_access_tokens_required"] is False
    assert document["tls_client_certificate_bound_access_tokens"] is True
    assert issuer.jwks_requests == 0


def test_a_resource_with_a_path_serves_its_metadata_below_the_well_known_path(
    issuer: TestIssuer, make_verifier: MakeVerifier
) -> None:
    verifier = make_verifier()
    metadata = ResourceMetadata(
        "https://api.example.test/reports", [issuer.url], scopes_supported=["read"]
    )
    app = asgi_app(verifier)
    app.resource_metadata = metadata
    response = get(app, "/.well-known/oauth-protected-resource/reports")
    assert response.json()["scopes_supported"] == ["read"]
    refused = get(app, "/orders")
    assert (
        'resource_metadata="https://api.example.test/.well-known/oauth-protected-resource/reports"'
        in (refused.headers["www-authenticate"])
    )


def test_resource_metadata_settings_that_cannot_work_are_config_errors(
    issuer: TestIssuer,
) -> None:
    with pytest.raises(ConfigError, match="authorization_servers"):
        ResourceMetadata("https://api.example.test/", [])
    with pytest.raises(ConfigError, match="fragment"):
        ResourceMetadata("https://api.example.test/#x", [issuer.url])
    with pytest.raises(ConfigError, match="resource"):
        ResourceMetadata("http://api.example.test/", [issuer.url])

    class Introspecting:
        async def verify(self, token: str) -> AccessToken:
            raise NotImplementedError

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        raise NotImplementedError

    assert BearerTokenMiddleware(inner, Introspecting()).resource_metadata is None
    with pytest.raises(ConfigError, match="names no issuer"):
        BearerTokenMiddleware(inner, Introspecting(), resource_metadata=True)
