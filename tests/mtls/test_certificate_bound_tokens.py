"""The API side of RFC 8705 §3: a certificate-bound token works only with its certificate.

An API behind ``BearerTokenMiddleware``, served by uvicorn over TLS with
:func:`authkestra.tls.uvicorn.uvicorn_tls_options`, receives tokens that
``authkestra serve`` bound to client certificates; the Starlette backend and the
FastAPI dependency make the same check.
"""

from __future__ import annotations

import ssl
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import Depends, FastAPI
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from authkestra import ClientCredentialsFlow, RetryPolicy
from authkestra.resource import AccessToken, JWTVerifier
from authkestra.resource.asgi import BearerTokenMiddleware
from authkestra.resource.fastapi import require_scopes
from authkestra.resource.starlette import BearerTokenBackend, on_auth_error
from authkestra.resource.starlette import require_scopes as starlette_require_scopes
from authkestra.tls.uvicorn import uvicorn_tls_options
from tests.mtls.conftest import client_context
from tests.mtls.test_mtls_server import register
from tests.support.authkestra_server import AuthkestraServer
from tests.support.certificates import Issued, TestPKI
from tests.support.redis_server import free_port

API = "https://api.test/"


async def whoami(scope, receive, send):  # type: ignore[no-untyped-def]
    access = scope["authkestra.access_token"]
    body = JSONResponse({"client_id": access.client_id})
    await body(scope, receive, send)


class TLSApi:
    """An ASGI app under uvicorn over TLS, asking clients for certificates of ``pki``."""

    def __init__(self, app, pki: TestPKI, server_cert: Issued, http: Any = None) -> None:  # type: ignore[no-untyped-def]
        """``http``: a uvicorn HTTP protocol class other than uvicorn_tls_options' own."""
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="off",
            loop="asyncio",
            **{
                **uvicorn_tls_options(
                    server_cert.cert_path, server_cert.key_path, client_ca=pki.ca.cert_path
                ),
                **({"http": http} if http is not None else {}),
            },
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            assert time.monotonic() < deadline, "the API did not start"
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


@pytest.fixture(scope="module")
def verifier(tls_server: AuthkestraServer, pki: TestPKI) -> JWTVerifier:
    context = client_context(pki)
    return JWTVerifier(
        issuer=tls_server.issuer,
        audience=API,
        http_client=httpx.Client(verify=context),
        async_http_client=httpx.AsyncClient(verify=context),
    )


@pytest.fixture(scope="module")
def bound_client(tls_server: AuthkestraServer) -> str:
    return register(
        tls_server,
        "--audience",
        API,
        "--auth-method",
        "tls_client_auth",
        "--tls-san-dns",
        "svc-a.internal.example",
    )


def bound_token(tls_server: AuthkestraServer, pki: TestPKI, client_id: str, cert: Issued) -> str:
    flow = ClientCredentialsFlow(
        client_id,
        token_url=tls_server.token_url,
        auth_method="tls_client_auth",
        client_cert=(cert.cert_path, cert.key_path),
        ca_bundle=pki.ca.cert_path,
        resource=API,
        retry=RetryPolicy(max_attempts=1),
    )
    return flow.get_token_sync().access_token


def call(url: str, token: str, context: ssl.SSLContext) -> httpx.Response:
    return httpx.get(url, headers={"Authorization": f"Bearer {token}"}, verify=context)


@pytest.fixture(scope="module")
def middleware_api(verifier: JWTVerifier, pki: TestPKI, server_cert: Issued) -> Iterator[TLSApi]:
    api = TLSApi(BearerTokenMiddleware(whoami, verifier), pki, server_cert)
    yield api
    api.stop()


def test_the_token_works_with_its_certificate(
    middleware_api: TLSApi,
    tls_server: AuthkestraServer,
    pki: TestPKI,
    svc_cert: Issued,
    bound_client: str,
) -> None:
    token = bound_token(tls_server, pki, bound_client, svc_cert)
    answer = call(f"{middleware_api.url}/x", token, client_context(pki, svc_cert))
    assert answer.status_code == 200
    assert answer.json() == {"client_id": bound_client}


def test_another_certificate_is_refused(
    middleware_api: TLSApi,
    tls_server: AuthkestraServer,
    pki: TestPKI,
    svc_cert: Issued,
    other_svc_cert: Issued,
    bound_client: str,
) -> None:
    token = bound_token(tls_server, pki, bound_client, svc_cert)
    answer = call(f"{middleware_api.url}/x", token, client_context(pki, other_svc_cert))
    assert answer.status_code == 401
    assert 'error="invalid_token"' in answer.headers["www-authenticate"]
    assert "another TLS client certificate" in answer.json()["error_description"]


def test_no_certificate_is_refused(
    middleware_api: TLSApi,
    tls_server: AuthkestraServer,
    pki: TestPKI,
    svc_cert: Issued,
    bound_client: str,
) -> None:
    token = bound_token(tls_server, pki, bound_client, svc_cert)
    answer = call(f"{middleware_api.url}/x", token, client_context(pki))
    assert answer.status_code == 401
    assert "none was presented" in answer.json()["error_description"]


def test_an_unbound_token_needs_no_certificate(
    middleware_api: TLSApi, tls_server: AuthkestraServer, pki: TestPKI
) -> None:
    client_id, secret = tls_server.create_client(
        f"u-{uuid.uuid4().hex[:8]}", "--scope", "read", "--audience", API
    )
    flow = ClientCredentialsFlow(
        client_id, secret, tls_server.token_url, ca_bundle=pki.ca.cert_path, resource=API
    )
    answer = call(
        f"{middleware_api.url}/x", flow.get_token_sync().access_token, client_context(pki)
    )
    assert answer.status_code == 200


def _starlette_app(verifier: JWTVerifier) -> Starlette:
    @starlette_require_scopes("read")
    async def endpoint(request: Request) -> JSONResponse:
        return JSONResponse({"client_id": request.user.access_token.client_id})

    return Starlette(
        routes=[Route("/x", endpoint)],
        middleware=[
            Middleware(
                AuthenticationMiddleware,
                backend=BearerTokenBackend(verifier),
                on_error=on_auth_error,
            )
        ],
    )


def _fastapi_app(verifier: JWTVerifier) -> FastAPI:
    app = FastAPI()

    @app.get("/x")
    async def endpoint(token: AccessToken = Depends(require_scopes("read", verifier=verifier))):
        return {"client_id": token.client_id}

    return app


@pytest.mark.parametrize("make_app", [_starlette_app, _fastapi_app], ids=["starlette", "fastapi"])
def test_framework_integrations_check_the_certificate(
    make_app,
    verifier: JWTVerifier,
    tls_server: AuthkestraServer,
    pki: TestPKI,  # type: ignore[no-untyped-def]
    server_cert: Issued,
    svc_cert: Issued,
    other_svc_cert: Issued,
    bound_client: str,
) -> None:
    api = TLSApi(make_app(verifier), pki, server_cert)
    try:
        token = bound_token(tls_server, pki, bound_client, svc_cert)
        good = call(f"{api.url}/x", token, client_context(pki, svc_cert))
        assert good.status_code == 200, good.text
        assert good.json() == {"client_id": bound_client}
        for context in (client_context(pki, other_svc_cert), client_context(pki)):
            refused = call(f"{api.url}/x", token, context)
            assert refused.status_code == 401
            assert 'error="invalid_token"' in refused.headers["www-authenticate"]
    finally:
        api.stop()


async def echo_certificate(scope, receive, send):  # type: ignore[no-untyped-def]
    from authkestra.tls import presented_certificate

    certificate = presented_certificate(scope)
    await JSONResponse({"x5t#S256": certificate.thumbprint if certificate else None})(
        scope, receive, send
    )


@pytest.mark.parametrize("protocol", ["h11", "httptools"])
def test_both_uvicorn_protocols_hand_the_certificate_to_the_app(
    protocol: str, pki: TestPKI, server_cert: Issued, svc_cert: Issued
) -> None:
    from authkestra.tls import certificate_thumbprint
    from authkestra.tls import uvicorn as tls_uvicorn

    chosen = {
        "h11": tls_uvicorn.H11WithTLSExtension,
        "httptools": tls_uvicorn.TLSExtensionHTTPProtocol,
    }[protocol]
    api = TLSApi(echo_certificate, pki, server_cert, http=chosen)
    try:
        with httpx.Client(verify=client_context(pki, svc_cert)) as client:
            for _ in range(2):  # two requests on one connection
                assert client.get(f"{api.url}/").json() == {
                    "x5t#S256": certificate_thumbprint(svc_cert.der)
                }
        anonymous = httpx.get(f"{api.url}/", verify=client_context(pki))
        assert anonymous.json() == {"x5t#S256": None}
    finally:
        api.stop()
