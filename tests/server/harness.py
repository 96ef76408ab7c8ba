"""The authorization server in-process, driven with httpx through its ASGI interface.

The app runs with its lifespan in an event loop of its own thread (an anyio
blocking portal), so tests stay plain functions. ``cache_seconds=0`` by
default: a change made through the store is seen by the next request.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import secrets
import shutil
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import anyio.from_thread
import httpx
from joserfc import jwt
from joserfc.jwk import KeySet

from authkestra._jose.signing import jws_registry
from authkestra._protocol.client_auth import basic_credentials
from authkestra.server import ServerSettings, create_app
from authkestra.server.context import ServerContext, build_context
from authkestra.server.store import Store, new_secret

ISSUER = "https://as.example.test"
API = "https://api.example.test/"
API2 = "https://reports.example.test/"
ADDRESS = "127.0.0.1"

#: Every error code an answer of this server may carry.
OAUTH_ERRORS = {
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
    "invalid_target",
    "temporarily_unavailable",
    "server_error",
}


class InProcessServer:
    """``create_app(context=build_context(settings))`` with a fresh SQLite store."""

    def __init__(self, directory: Path, *, template: Path | None = None, **overrides: Any) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.db_path = directory / "authkestra.db"
        self.db = f"sqlite:///{self.db_path}"
        if template is not None:
            shutil.copyfile(template, self.db_path)  # an empty migrated store: faster
            self.db_path.chmod(0o600)
        values: dict[str, Any] = {
            "db": self.db,
            "issuer": ISSUER,
            "cache_seconds": 0,
            # The hostile corpus fails authentication on purpose, many times.
            "max_failures_per_address": 1_000_000,
        }
        values.update(overrides)
        self.settings = ServerSettings(**values)
        self.ctx: ServerContext = build_context(self.settings)
        self.app = create_app(self.settings, context=self.ctx)
        self._stack = contextlib.ExitStack()
        self.portal = self._stack.enter_context(anyio.from_thread.start_blocking_portal())
        self._stack.enter_context(
            self.portal.wrap_async_context_manager(self.app.router.lifespan_context(self.app))
        )
        self._clients: dict[str, httpx.AsyncClient] = {}
        self._admin: httpx.AsyncClient | None = None

    # -- HTTP ----------------------------------------------------------------------------

    def _client(self, address: str) -> httpx.AsyncClient:
        client = self._clients.get(address)
        if client is None:
            transport = httpx.ASGITransport(app=self.app, client=(address, 40000))
            client = httpx.AsyncClient(transport=transport, base_url=ISSUER)
            self._stack.enter_context(self.portal.wrap_async_context_manager(client))
            self._clients[address] = client
        return client

    def request(
        self, method: str, path: str, *, address: str = ADDRESS, **kwargs: Any
    ) -> httpx.Response:
        client = self._client(address)
        return self.portal.call(functools.partial(client.request, method, path, **kwargs))

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, **kwargs)

    def form(
        self,
        path: str,
        params: Mapping[str, str] | Iterable[tuple[str, str]] = (),
        *,
        basic: tuple[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        address: str = ADDRESS,
    ) -> httpx.Response:
        """POST ``params`` as a form, with Basic credentials when given."""
        items = list(params.items()) if isinstance(params, Mapping) else list(params)
        all_headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if basic is not None:
            all_headers["Authorization"] = basic_credentials(*basic)
        all_headers.update(headers or {})
        body = urlencode(items).encode()
        return self.post(path, content=body, headers=all_headers, address=address)

    def token(
        self,
        client: tuple[str, str],
        params: Mapping[str, str] | Iterable[tuple[str, str]] = (),
        *,
        post: bool = False,
        address: str = ADDRESS,
    ) -> httpx.Response:
        """A client_credentials request by ``client`` (Basic, or in the body with ``post``)."""
        items = [("grant_type", "client_credentials")]
        items += list(params.items()) if isinstance(params, Mapping) else list(params)
        if post:
            items += [("client_id", client[0]), ("client_secret", client[1])]
            return self.form("/token", items, address=address)
        return self.form("/token", items, basic=client, address=address)

    def access_token(self, client: tuple[str, str], **params: str) -> str:
        response = self.token(client, params)
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])

    def introspect(self, token: str, caller: tuple[str, str]) -> dict[str, Any]:
        response = self.form("/introspect", {"token": token}, basic=caller)
        assert response.status_code == 200, response.text
        answer = response.json()
        assert isinstance(answer, dict)
        return answer

    def revoke(self, token: str, caller: tuple[str, str]) -> httpx.Response:
        return self.form("/revoke", {"token": token}, basic=caller)

    def jwks(self) -> dict[str, Any]:
        response = self.get("/jwks.json")
        assert response.status_code == 200
        document = response.json()
        assert isinstance(document, dict)
        return document

    # -- the store -----------------------------------------------------------------------

    def add_client(
        self,
        client_id: str | None = None,
        secret: str | None = None,
        *,
        auth_method: str = "client_secret_basic",
        scopes: Iterable[str] = ("read", "write"),
        audiences: Iterable[str] = (API,),
        default_scopes: Iterable[str] | None = None,
        token_ttl: int | None = None,
        introspection: str | None = "audience",
    ) -> tuple[str, str]:
        """Register a client through the store API: (client_id, secret).

        It may introspect the tokens of its audiences (the tests' clients often play the
        API too); ``introspection=None`` for one without that right.
        """
        client_id = client_id or f"svc-{secrets.token_hex(4)}"
        secret = secret or new_secret()
        self.ctx.store.create_client(
            client_id,
            secret_hash=self.ctx.hasher.hash(secret),
            auth_method=auth_method,
            scopes=tuple(scopes),
            audiences=tuple(audiences),
            default_scopes=tuple(default_scopes) if default_scopes is not None else None,
            token_ttl=token_ttl,
            introspection=introspection,
        )
        return client_id, secret

    def sign(self, claims: dict[str, Any], **header: Any) -> str:
        """A JWT signed with the server's current signing key (for forged-claims tests)."""
        kid, alg, key = self.ctx.keys.signing_key()
        full_header = {"alg": alg, "kid": kid, "typ": "at+jwt", **header}
        return jwt.encode(full_header, claims, key, registry=jws_registry(alg))

    def claims_for(self, client_id: str, /, **changes: Any) -> dict[str, Any]:
        """Claims like the server's own, for ``client_id``, with ``changes`` (None deletes)."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "sub": client_id,
            "client_id": client_id,
            "aud": API,
            "iat": now,
            "exp": now + 600,
            "jti": secrets.token_urlsafe(16),
            "scope": "read",
        }
        for name, value in changes.items():
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = value
        return claims

    # -- the admin API ------------------------------------------------------------------

    def admin(
        self, method: str, path: str, *, token: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        """A request to the admin API (over this server's context), with ``token`` as Bearer."""
        if self._admin is None:
            from authkestra.server.admin import create_admin_app

            transport = httpx.ASGITransport(
                app=create_admin_app(self.settings, context=self.ctx), client=(ADDRESS, 40001)
            )
            self._admin = httpx.AsyncClient(transport=transport, base_url="http://admin.test")
            self._stack.enter_context(self.portal.wrap_async_context_manager(self._admin))
        headers = dict(kwargs.pop("headers", {}))
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return self.portal.call(
            functools.partial(self._admin.request, method, path, headers=headers, **kwargs)
        )

    def admin_token(self, scopes: str = "authkestra:admin") -> str:
        """A token of this server with ``scopes``, for a client registered to ask for them."""
        client = self.add_client(scopes=scopes.split(), introspection=None)
        return self.access_token(client, scope=scopes)

    def close(self) -> None:
        self._stack.close()
        self.ctx.close()


def jose_part(token: str, index: int) -> dict[str, Any]:
    """The decoded header (0) or payload (1) of a compact JWS, unverified."""
    segment = token.split(".")[index]
    value = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    assert isinstance(value, dict)
    return value


def verify_with_jwks(token: str, jwks: dict[str, Any]) -> dict[str, Any]:
    """The claims of ``token``, its signature checked against the published JWKS."""
    header = jose_part(token, 0)
    key_set = KeySet.import_key_set(jwks)  # type: ignore[arg-type]
    # The server's registry: joserfc's own warns on every use of EdDSA (RFC 9864).
    return dict(jwt.decode(token, key_set, registry=jws_registry(header["alg"])).claims)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def assert_oauth_error(
    response: httpx.Response, error: str | None = None, status: int | None = None
) -> dict[str, Any]:
    """An RFC 6749 §5.2 error: JSON object with a known ``error``, never a 5xx or a page
    (but a 503 ``temporarily_unavailable`` with Retry-After, when that is the error asked for)."""
    if response.status_code == 503 and error == "temporarily_unavailable":
        assert int(response.headers["retry-after"]) >= 1
    else:
        assert response.status_code < 500, (response.status_code, response.text)
    assert response.status_code >= 400, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json"), response.headers
    text = response.text
    assert "Traceback" not in text and "<html" not in text.lower()
    body = response.json()
    assert isinstance(body, dict)
    assert body.get("error") in OAUTH_ERRORS, body
    assert set(body) <= {"error", "error_description", "error_uri"}, body
    if error is not None:
        assert body["error"] == error, body
    if status is not None:
        assert response.status_code == status, (response.status_code, body)
    return body


def assert_no_such_path(response: httpx.Response) -> None:
    """A 404 for a path the server does not serve: JSON (RFC 9457), and no OAuth error."""
    assert response.status_code == 404, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == 404 and body["title"] == "Not Found"
    assert "error" not in body


def poll(condition: Any, *, timeout: float = 15.0, interval: float = 0.1) -> Any:
    """Call ``condition`` until it returns something truthy (bounded); return that."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


def migrated_store(path: Path) -> Path:
    """An empty store at ``path`` with the schema (no keys, no clients), to copy."""
    store = Store(f"sqlite:///{path}")
    store.migrate()
    store.close()  # the last connection folds the WAL into the file
    return path


@contextlib.contextmanager
def in_process_server(directory: Path, **overrides: Any) -> Iterator[InProcessServer]:
    server = InProcessServer(directory, **overrides)
    try:
        yield server
    finally:
        server.close()
