"""A client that knows only the API's URL (RFC 9728): ``ClientCredentialsFlow.for_resource``.

A real ``authkestra serve`` issues the tokens; the API is uvicorn serving our
``BearerTokenMiddleware`` with its protected resource metadata. The flow reads the
API's metadata, finds the authorization server, asks for a token for the API and
calls it. Metadata that describes another resource, or names no authorization server,
is refused before any token is asked for.
"""

from __future__ import annotations

import base64
import http.server
import io
import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from authkestra import ClientCredentialsFlow, ConfigError, MalformedResponse
from authkestra.cli import Environment, main
from authkestra.resource import JWTVerifier
from authkestra.resource.asgi import BearerTokenMiddleware
from tests.support.asgi_server import serving
from tests.support.authkestra_server import AuthkestraServer
from tests.support.redis_server import free_port


class Deployment:
    def __init__(self, server: AuthkestraServer, api: str, client: tuple[str, str]) -> None:
        self.server, self.api, self.client = server, api, client


@pytest.fixture(scope="module")
def deployment() -> Iterator[Deployment]:
    server = AuthkestraServer()
    port = free_port()
    api = f"http://127.0.0.1:{port}/reports"
    try:
        client = server.create_client("reporter", "--scope", "read", "--audience", api)

        async def reports(request: Request) -> JSONResponse:
            token = request.state.access_token
            return JSONResponse({"client_id": token.client_id})

        verifier = JWTVerifier(issuer=server.issuer, audience=api, allow_insecure_http=True)
        app = BearerTokenMiddleware(Starlette(routes=[Route("/reports", reports)]), verifier)
        with serving(app, port):
            yield Deployment(server, api, client)
    finally:
        server.stop()


def test_the_flow_finds_the_authorization_server_from_the_api(deployment: Deployment) -> None:
    client_id, secret = deployment.client
    flow = ClientCredentialsFlow.for_resource(deployment.api, client_id, secret)
    assert "protected_resource='http://127.0.0.1" in repr(flow)
    token = flow.get_token_sync(["read"])
    assert flow.resource_metadata is not None
    assert flow.resource_metadata.authorization_servers == (deployment.server.issuer,)
    assert flow.token_url == deployment.server.token_url
    claims = json.loads(base64.urlsafe_b64decode(token.access_token.split(".")[1] + "=="))
    assert claims["aud"] == deployment.api  # asked for with resource = the API's URL
    with httpx.Client(auth=flow.auth(["read"])) as http:
        assert http.get(deployment.api).json() == {"client_id": client_id}


def test_the_api_challenge_names_its_metadata(deployment: Deployment) -> None:
    refused = httpx.get(deployment.api)
    assert refused.status_code == 401
    metadata_url = deployment.api.replace(
        "/reports", "/.well-known/oauth-protected-resource/reports"
    )
    assert f'resource_metadata="{metadata_url}"' in refused.headers["www-authenticate"]
    assert httpx.get(metadata_url).json()["resource"] == deployment.api


def test_the_token_command_takes_the_api_url(
    deployment: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    client_id, secret = deployment.client
    out, err = io.StringIO(), io.StringIO()
    environ = {"AUTHKESTRA_CLIENT_ID": client_id, "AUTHKESTRA_CLIENT_SECRET": secret}
    code = main(
        ["token", "--for", deployment.api, "--scope", "read", "--format", "json"],
        Environment(stdin=io.StringIO(), stdout=out, stderr=err, environ=environ),
    )
    assert code == 0, err.getvalue()
    assert json.loads(out.getvalue())["scope"] == "read"
    code = main(
        ["token", "--for", deployment.api, "--issuer", deployment.server.issuer],
        Environment(stdin=io.StringIO(), stdout=io.StringIO(), stderr=err, environ=environ),
    )
    assert code == 2
    assert "give one of --token-url, --issuer and --for" in capsys.readouterr().err


class Hostile(http.server.ThreadingHTTPServer):
    """Answers every metadata request with ``document``; counts what it was sent."""

    def __init__(self, document: dict[str, Any]) -> None:
        super().__init__(("127.0.0.1", 0), _HostileHandler)
        self.document = document
        self.paths: list[str] = []
        self.url = f"http://127.0.0.1:{self.server_address[1]}"


class _HostileHandler(http.server.BaseHTTPRequestHandler):
    server: Hostile

    def do_GET(self) -> None:
        self.server.paths.append(self.path)
        body = json.dumps(self.server.document).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        self.server.paths.append("POST " + self.path)
        self.send_response(500)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def hostile() -> Iterator[Hostile]:
    server = Hostile({})
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    ("document", "said"),
    [
        ({"resource": "https://other.example/", "authorization_servers": ["https://as.example"]},
         "describes resource 'https://other.example/'"),
        ({"authorization_servers": ["https://as.example"]}, "describes resource None"),
        ({"resource": "{api}"}, "names no authorization_servers"),
        ({"resource": "{api}", "authorization_servers": []}, "names no authorization_servers"),
        ({"resource": "{api}", "authorization_servers": [7]}, "names no authorization_servers"),
        ({"resource": "{api}", "authorization_servers": ["http://as.example"]}, "http"),
    ],
)  # fmt: skip
def test_metadata_that_could_send_the_token_elsewhere_is_refused(
    hostile: Hostile, document: dict[str, Any], said: str
) -> None:
    api = f"{hostile.url}/api"
    hostile.document = {
        k: (v.format(api=api) if isinstance(v, str) else v) for k, v in document.items()
    }
    flow = ClientCredentialsFlow.for_resource(api, "c", "a-secret-of-the-client")
    with pytest.raises(MalformedResponse, match="resource metadata") as caught:
        flow.get_token_sync()
    assert said in str(caught.value)
    assert hostile.paths == ["/.well-known/oauth-protected-resource/api"]  # no token request


def test_for_resource_settings_that_cannot_work() -> None:
    with pytest.raises(
        ConfigError, match="exactly one of token_url, issuer and protected_resource"
    ):
        ClientCredentialsFlow(
            "c", "s", "https://as.example/token", protected_resource="https://a.example/"
        )
    with pytest.raises(ConfigError, match="protected_resource"):
        ClientCredentialsFlow.for_resource("http://api.example/", "c", "s")
