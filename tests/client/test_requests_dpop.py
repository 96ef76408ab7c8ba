"""flow.requests_auth() with DPoP (RFC 9449), against real servers on loopback.

Tokens come from ``authkestra serve`` (DPoP-bound, ``cnf.jkt``). The API is
uvicorn serving our own BearerTokenMiddleware, which checks every proof; in
front of it, a recorder keeps what arrived, and a gate can demand a nonce of
the API's (RFC 9449 §9). Tokens are "revoked" by the API's verifier, so a
401 ``invalid_token`` comes from the middleware itself.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import time
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
from joserfc import jws
from joserfc.jwk import ECKey, OKPKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from authkestra import ClientCredentialsFlow, InvalidToken, RetryPolicy
from authkestra._jose.signing import jws_registry
from authkestra.resource import AccessToken, JWTVerifier
from authkestra.resource.asgi import BearerTokenMiddleware
from tests.support.asgi_server import serving
from tests.support.authkestra_server import AuthkestraServer
from tests.support.redis_server import free_port

API = "https://orders.api.test/"

Scope = MutableMapping[str, Any]


# -- the API ---------------------------------------------------------------------------------


@dataclass
class Arrived:
    """One request as it reached the API, and the status it was answered with."""

    method: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes
    status: int = 0

    def header(self, name: str) -> str | None:
        values = self.all(name)
        return values[0] if values else None

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k == name]


class Recorder:
    """Outermost layer: keeps every request and the status it got."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.arrived: list[Arrived] = []

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        # The whole body first (the layers behind may refuse without reading it), then handed on.
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if message["type"] != "http.request" or not message.get("more_body"):
                break
        entry = Arrived(scope["method"], scope["path"], headers, body)
        self.arrived.append(entry)
        replayed = False

        async def replay() -> Any:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def recording_send(message: Any) -> None:
            if message["type"] == "http.response.start":
                entry.status = message["status"]
            await send(message)

        await self.app(scope, replay, recording_send)


class NonceGate:
    """Demands the API's nonce in every proof; ``stubborn`` demands a new one every time."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.enabled = False
        self.stubborn = False
        self.issued = 0

    def _nonce(self) -> str:
        return f"api-nonce-{self.issued}"

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not self.enabled:
            await self.app(scope, receive, send)
            return
        proofs = [v for k, v in scope["headers"] if k == b"dpop"]
        claims = _unverified_claims(proofs[0].decode()) if proofs else {}
        # The proof itself is checked by the middleware behind this gate.
        if self.stubborn or self.issued == 0 or claims.get("nonce") != self._nonce():
            self.issued += 1
            challenge = 'DPoP error="use_dpop_nonce", error_description="use the API nonce"'
            response = JSONResponse(
                {"error": "use_dpop_nonce"},
                401,
                headers={"WWW-Authenticate": challenge, "DPoP-Nonce": self._nonce()},
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


class RevocableVerifier:
    """The issuer's JWTVerifier, refusing the tokens in ``revoked`` (or all): revoked at the issuer."""

    def __init__(self, inner: JWTVerifier) -> None:
        self.inner = inner
        self.revoked: set[str] = set()
        self.refuse_all = False

    async def verify(self, token: str) -> AccessToken:
        if self.refuse_all or token in self.revoked:
            raise InvalidToken("the token was revoked")
        return await self.inner.verify(token)


async def _items(request: Request) -> Response:
    if request.method == "GET":
        return JSONResponse({"client_id": request.state.access_token.client_id})
    return Response(await request.body(), media_type="application/octet-stream")


@dataclass
class Deployment:
    issuer: AuthkestraServer
    client: tuple[str, str]
    url: str
    recorder: Recorder
    gate: NonceGate
    verifier: RevocableVerifier
    other_origin: str = field(default="")

    def flow(self) -> ClientCredentialsFlow:
        return ClientCredentialsFlow(
            *self.client,
            self.issuer.token_url,
            resource=API,
            dpop=True,
            retry=RetryPolicy(max_attempts=1),
        )


@pytest.fixture(scope="module")
def deployment() -> Iterator[Deployment]:
    issuer = AuthkestraServer()
    try:
        client = issuer.create_client("orders-reader", "--scope", "read", "--audience", API)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        # The same API under another host name: requests drops Authorization on the way there.
        other_origin = f"http://localhost:{port}"
        routes = [
            Route("/items", _items, methods=["GET", "POST", "PUT"]),
            Route("/moved", lambda r: RedirectResponse(f"{url}/items", 307)),
            Route("/away", lambda r: RedirectResponse(f"{other_origin}/items", 307)),
        ]
        verifier = RevocableVerifier(
            JWTVerifier(issuer=issuer.issuer, audience=API, cache_tokens=False)
        )
        protected = BearerTokenMiddleware(Starlette(routes=routes), verifier, scopes=["read"])
        gate = NonceGate(protected)
        recorder = Recorder(gate)
        with serving(recorder, port):
            yield Deployment(issuer, client, url, recorder, gate, verifier, other_origin)
    finally:
        issuer.stop()


@pytest.fixture
def api(deployment: Deployment) -> Deployment:
    deployment.recorder.arrived.clear()
    deployment.gate.enabled = deployment.gate.stubborn = False
    deployment.gate.issued = 0
    deployment.verifier.revoked.clear()
    deployment.verifier.refuse_all = False
    return deployment


# -- checking what arrived -------------------------------------------------------------------


def _b64json(segment: str) -> Any:
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


def _unverified_claims(token: str) -> dict[str, Any]:
    try:
        claims = _b64json(token.split(".")[1])
    except (IndexError, ValueError):
        return {}
    return claims if isinstance(claims, dict) else {}


def _ath(token: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(token.encode()).digest()).rstrip(b"=").decode()


def _checked_proof(arrived: Arrived, base_url: str) -> dict[str, Any]:
    """The request's DPoP proof, verified here with joserfc; its claims."""
    scheme, _, token = (arrived.header("authorization") or "").partition(" ")
    assert scheme == "DPoP", arrived.headers
    proofs = arrived.all("dpop")
    assert len(proofs) == 1, proofs
    header = _b64json(proofs[0].split(".")[0])
    assert header["typ"] == "dpop+jwt"
    assert header["alg"] == "ES256"
    assert set(header["jwk"]) == {"kty", "crv", "x", "y"}  # the public key only
    key: Any = {"EC": ECKey, "OKP": OKPKey}[header["jwk"]["kty"]].import_key(header["jwk"])
    claims = json.loads(
        jws.deserialize_compact(proofs[0], key, registry=jws_registry(header["alg"])).payload
    )
    # The token is bound to the key that signed the proof.
    assert key.thumbprint() == _unverified_claims(token)["cnf"]["jkt"]
    assert claims["htm"] == arrived.method
    assert claims["htu"] == base_url + arrived.path  # without the query
    assert claims["ath"] == _ath(token)
    assert abs(claims["iat"] - time.time()) < 60
    assert isinstance(claims["jti"], str) and len(claims["jti"]) >= 16
    return dict(claims)


def _token_of(arrived: Arrived) -> str:
    return (arrived.header("authorization") or "").partition(" ")[2]


def _distinct_jtis(proofs: list[dict[str, Any]]) -> None:
    assert len({p["jti"] for p in proofs}) == len(proofs)


# -- the tests --------------------------------------------------------------------------------


def test_each_request_carries_the_dpop_scheme_and_its_own_valid_proof(api: Deployment) -> None:
    flow = api.flow()
    with requests.Session() as session:
        session.auth = flow.requests_auth(["read"])
        assert session.get(f"{api.url}/items?page=2", timeout=10).json() == {
            "client_id": api.client[0]
        }
        response = session.post(f"{api.url}/items?x=1", data=b"payload", timeout=10)
        assert response.status_code == 200 and response.content == b"payload"
        response = session.put(f"{api.url}/items", json={"a": 1}, timeout=10)
        assert response.status_code == 200 and response.json() == {"a": 1}
        assert not response.history

    arrived = api.recorder.arrived
    assert [(a.method, a.status) for a in arrived] == [("GET", 200), ("POST", 200), ("PUT", 200)]
    proofs = [_checked_proof(a, api.url) for a in arrived]
    _distinct_jtis(proofs)
    assert len({_token_of(a) for a in arrived}) == 1  # one token, many proofs
    assert all("nonce" not in p for p in proofs)
    assert flow.dpop_thumbprint == _unverified_claims(_token_of(arrived[0]))["cnf"]["jkt"]


def test_the_api_nonce_challenge_is_answered_with_a_new_proof(api: Deployment) -> None:
    api.gate.enabled = True
    with requests.Session() as session:
        session.auth = api.flow().requests_auth(["read"])
        response = session.post(f"{api.url}/items", data=b"payload", timeout=10)
        assert response.status_code == 200 and response.content == b"payload"
        assert [r.status_code for r in response.history] == [401]
        # The nonce is remembered: the next request carries it from the start.
        assert session.get(f"{api.url}/items", timeout=10).status_code == 200

    arrived = api.recorder.arrived
    assert [(a.method, a.status) for a in arrived] == [("POST", 401), ("POST", 200), ("GET", 200)]
    assert [a.body for a in arrived[:2]] == [b"payload", b"payload"]
    proofs = [_checked_proof(a, api.url) for a in arrived]
    _distinct_jtis(proofs)
    assert [p.get("nonce") for p in proofs] == [None, "api-nonce-1", "api-nonce-1"]


def test_a_nonce_challenge_is_answered_once_not_looped(api: Deployment) -> None:
    api.gate.enabled = api.gate.stubborn = True
    with requests.Session() as session:
        session.auth = api.flow().requests_auth(["read"])
        response = session.get(f"{api.url}/items", timeout=10)
    assert response.status_code == 401
    assert 'error="use_dpop_nonce"' in response.headers["WWW-Authenticate"]
    arrived = api.recorder.arrived
    assert [a.status for a in arrived] == [401, 401]
    proofs = [_checked_proof(a, api.url) for a in arrived]
    _distinct_jtis(proofs)
    assert [p.get("nonce") for p in proofs] == [None, "api-nonce-1"]


def test_a_refused_token_is_replaced_once_with_a_fresh_token_and_proof(api: Deployment) -> None:
    flow = api.flow()
    with requests.Session() as session:
        session.auth = flow.requests_auth(["read"])
        assert session.get(f"{api.url}/items", timeout=10).status_code == 200
        first = _token_of(api.recorder.arrived[0])
        api.verifier.revoked.add(first)
        response = session.post(f"{api.url}/items", data=b"payload", timeout=10)
        assert response.status_code == 200 and response.content == b"payload"
        assert [r.status_code for r in response.history] == [401]
        assert (
            response.history[0].headers["WWW-Authenticate"].startswith('DPoP error="invalid_token"')
        )
        # The fresh token is cached: the next request uses it straight away.
        assert session.get(f"{api.url}/items", timeout=10).status_code == 200

    arrived = api.recorder.arrived
    assert [a.status for a in arrived] == [200, 401, 200, 200]
    tokens = [_token_of(a) for a in arrived]
    assert tokens[0] == tokens[1] != tokens[2] == tokens[3]
    assert arrived[2].body == b"payload"
    proofs = [_checked_proof(a, api.url) for a in arrived]  # ath follows the token
    _distinct_jtis(proofs)


def test_a_token_refused_every_time_is_retried_only_once(api: Deployment) -> None:
    api.verifier.refuse_all = True
    with requests.Session() as session:
        session.auth = api.flow().requests_auth(["read"])
        response = session.get(f"{api.url}/items", timeout=10)
    assert response.status_code == 401
    arrived = api.recorder.arrived
    assert [a.status for a in arrived] == [401, 401]
    assert _token_of(arrived[0]) != _token_of(arrived[1])
    _distinct_jtis([_checked_proof(a, api.url) for a in arrived])


@pytest.mark.parametrize("body_kind", ["generator", "file"])
def test_a_body_that_cannot_be_replayed_is_not_sent_again(api: Deployment, body_kind: str) -> None:
    def body() -> Any:
        if body_kind == "file":
            return io.BytesIO(b"only-once")
        return iter([b"only-", b"once"])

    flow = api.flow()
    with requests.Session() as session:
        session.auth = flow.requests_auth(["read"])
        # A nonce challenge...
        api.gate.enabled = True
        response = session.post(f"{api.url}/items", data=body(), timeout=10)
        assert response.status_code == 401 and not response.history
        api.gate.enabled = False
        # ...and a refused token.
        api.verifier.revoked.add(_token_of(api.recorder.arrived[0]))
        response = session.post(f"{api.url}/items", data=body(), timeout=10)
        assert response.status_code == 401 and not response.history

    arrived = api.recorder.arrived
    assert [(a.status, a.body) for a in arrived] == [(401, b"only-once"), (401, b"only-once")]
    _distinct_jtis([_checked_proof(a, api.url) for a in arrived])


def test_a_redirect_on_the_same_origin_gets_a_proof_of_its_own(api: Deployment) -> None:
    with requests.Session() as session:
        session.auth = api.flow().requests_auth(["read"])
        response = session.get(f"{api.url}/moved?x=1", timeout=10)
    assert response.status_code == 200, response.text
    arrived = api.recorder.arrived
    assert [(a.path, a.status) for a in arrived] == [
        ("/moved", 307),
        ("/items", 401),  # requests followed without the spent proof
        ("/items", 200),
    ]
    assert arrived[1].all("dpop") == []
    proofs = [_checked_proof(arrived[0], api.url), _checked_proof(arrived[2], api.url)]
    _distinct_jtis(proofs)
    assert len({_token_of(a) for a in arrived}) == 1  # the token was not thrown away


def test_a_redirect_to_another_origin_carries_neither_token_nor_proof(api: Deployment) -> None:
    with requests.Session() as session:
        session.auth = api.flow().requests_auth(["read"])
        response = session.get(f"{api.url}/away", timeout=10)
    assert response.status_code == 401
    arrived = api.recorder.arrived
    assert [(a.path, a.status) for a in arrived] == [("/away", 307), ("/items", 401)]
    assert arrived[1].header("host") == api.other_origin.removeprefix("http://")
    assert arrived[1].header("authorization") is None
    assert arrived[1].all("dpop") == []
