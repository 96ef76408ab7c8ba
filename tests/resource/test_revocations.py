"""Revocation that reaches APIs: ``JWTVerifier(revocations=...)`` and ``GET /revocations``.

A real ``authkestra serve`` (with a real ``redis-server``) revokes tokens and disables
clients; an API's verifier follows the signed list and refuses them -- cached tokens
included -- within its refresh interval, or at once with the server's Redis nudge.
No test depends on timing: each waits for the refusal with a generous deadline.
"""

from __future__ import annotations

import base64
import http.server
import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import redis as redis_py
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet

from authkestra import InvalidToken, MalformedResponse, NetworkError, ProviderError
from authkestra._protocol.revocations import client_digest
from authkestra.resource import JWTVerifier, Revocations
from tests.support.authkestra_server import AuthkestraServer, cli
from tests.support.redis_server import RedisServer, free_port

API = "https://api.example.test/"


class Deployment:
    def __init__(self, server: AuthkestraServer, redis: RedisServer) -> None:
        self.server, self.redis = server, redis
        self.client = server.create_client("caller", "--scope", "read", "--audience", API)

    def token(self, client: tuple[str, str] | None = None) -> str:
        answer = httpx.post(
            self.server.token_url,
            data={"grant_type": "client_credentials"},
            auth=client or self.client,
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        return str(answer.json()["access_token"])

    def revoke(self, token: str, client: tuple[str, str] | None = None) -> None:
        answer = httpx.post(
            f"{self.server.issuer}/revoke", data={"token": token},
            auth=client or self.client, timeout=10,
        )  # fmt: skip
        assert answer.status_code == 200

    def verifier(self, **options: Any) -> JWTVerifier:
        return JWTVerifier(
            issuer=self.server.issuer,
            audience=API,
            allow_insecure_http=True,
            revocations=Revocations(**options) if options else True,
        )


@pytest.fixture(scope="module")
def deployment() -> Iterator[Deployment]:
    redis = RedisServer()
    server = AuthkestraServer(redis=redis.url)
    try:
        yield Deployment(server, redis)
    finally:
        server.stop()
        redis.stop()


def refused_within(verify: Callable[[], Any], seconds: float) -> str:
    """Verify until refused (at most ``seconds``): the refusal's message."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            verify()
        except InvalidToken as exc:
            return str(exc)
        assert time.monotonic() < deadline, "never refused"
        time.sleep(0.05)


def test_a_revoked_token_is_refused_even_from_the_cache(deployment: Deployment) -> None:
    verifier = deployment.verifier(refresh=0.5)
    token = deployment.token()
    assert verifier.verify_sync(token).client_id == "caller"  # verified, and cached
    deployment.revoke(token)
    assert refused_within(lambda: verifier.verify_sync(token), 20) == "the token was revoked"
    other = deployment.token()
    assert verifier.verify_sync(other).client_id == "caller"  # only that one
    verifier.close()


def test_without_the_list_a_revoked_token_is_accepted_until_it_expires(
    deployment: Deployment,
) -> None:
    """The control: what the list changes."""
    verifier = JWTVerifier(issuer=deployment.server.issuer, audience=API, allow_insecure_http=True)
    token = deployment.token()
    deployment.revoke(token)
    assert verifier.verify_sync(token).client_id == "caller"


def test_a_disabled_client_has_its_tokens_refused_until_enabled_again(
    deployment: Deployment,
) -> None:
    client = deployment.server.create_client("batch", "--scope", "read", "--audience", API)
    verifier = deployment.verifier(refresh=0.5)
    token = deployment.token(client)
    verifier.verify_sync(token)
    cli("clients", "disable", "batch", "--db", deployment.server.db)
    message = refused_within(lambda: verifier.verify_sync(token), 20)
    assert message == "the token's client is disabled at the issuer"
    cli("clients", "enable", "batch", "--db", deployment.server.db)
    deadline = time.monotonic() + 20
    while True:
        try:
            assert verifier.verify_sync(token).client_id == "batch"
            break
        except InvalidToken:
            assert time.monotonic() < deadline, "never accepted again"
            time.sleep(0.05)
    verifier.close()


def test_the_redis_nudge_refuses_at_once(deployment: Deployment) -> None:
    """Polled only once a minute: only the server's nudge can make the refusal quick."""
    redis = redis_py.Redis.from_url(deployment.redis.url)
    verifier = deployment.verifier(refresh=60, redis=redis)
    token = deployment.token()
    verifier.verify_sync(token)
    time.sleep(0.3)  # let the listener subscribe (its first message would be lost)
    deployment.revoke(token)
    assert refused_within(lambda: verifier.verify_sync(token), 15) == "the token was revoked"
    verifier.close()
    redis.close()


def test_the_async_verifier_follows_the_list_too(deployment: Deployment) -> None:
    import asyncio

    verifier = deployment.verifier(refresh=0.5)
    token = deployment.token()

    async def run() -> str:
        await verifier.verify(token)
        deployment.revoke(token)
        deadline = time.monotonic() + 20
        while True:
            try:
                await verifier.verify(token)
            except InvalidToken as exc:
                return str(exc)
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)

    assert asyncio.run(run()) == "the token was revoked"
    verifier.close()


def test_the_server_publishes_a_signed_list(deployment: Deployment) -> None:
    token = deployment.token()
    deployment.revoke(token)
    metadata = httpx.get(
        f"{deployment.server.issuer}/.well-known/oauth-authorization-server", timeout=10
    ).json()
    url = metadata["revocation_list_endpoint"]
    answer = httpx.get(url, timeout=10)
    assert answer.headers["content-type"].startswith("application/jwt")
    assert "max-age=1" in answer.headers["cache-control"]
    keys = KeySet.import_key_set(httpx.get(metadata["jwks_uri"], timeout=10).json())
    decoded = jwt.decode(answer.text, keys)
    assert decoded.header["typ"] == "authkestra-revocations+jwt"
    claims = decoded.claims
    assert claims["iss"] == deployment.server.issuer
    jti = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))["jti"]
    assert jti in claims["revoked_jtis"]
    # Disabled clients by digest only: the list is public, it names no client.
    client = deployment.server.create_client("gone", "--scope", "read")
    cli("clients", "disable", "gone", "--db", deployment.server.db)
    deadline = time.monotonic() + 15  # the list is rendered anew at most once a second
    while True:
        listed = jwt.decode(httpx.get(url, timeout=10).text, keys).claims["disabled_clients"]
        if client_digest("gone") in listed:
            break
        assert time.monotonic() < deadline, "the disabled client never appeared"
        time.sleep(0.2)
    assert "gone" not in json.dumps(listed)
    assert client[0] == "gone"
    assert claims["exp"] > time.time()


# -- lists that cannot be trusted ----------------------------------------------------------


class ListHost(http.server.ThreadingHTTPServer):
    """Serves ``body`` (status ``status``) as the revocation list."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", free_port()), _ListHandler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}/revocations"
        self.body = b""
        self.status = 200


class _ListHandler(http.server.BaseHTTPRequestHandler):
    server: ListHost

    def do_GET(self) -> None:
        self.send_response(self.server.status)
        self.send_header("Content-Type", "application/jwt")
        self.send_header("Content-Length", str(len(self.server.body)))
        self.end_headers()
        self.wfile.write(self.server.body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def host() -> Iterator[ListHost]:
    served = ListHost()
    threading.Thread(target=served.serve_forever, daemon=True).start()
    yield served
    served.shutdown()
    served.server_close()


def forged(deployment: Deployment, **changes: Any) -> bytes:
    """A list signed by a key that is not the issuer's (same kid as the issuer's key)."""
    jwks = httpx.get(f"{deployment.server.issuer}/jwks.json", timeout=10).json()
    kid = jwks["keys"][0]["kid"]
    header = {"alg": "ES256", "kid": kid, "typ": "authkestra-revocations+jwt"}
    header.update(changes.pop("header", {}))
    claims = {
        "iss": deployment.server.issuer, "iat": int(time.time()), "exp": int(time.time()) + 60,
        "revoked_jtis": [], "disabled_clients": [], **changes,
    }  # fmt: skip
    return jwt.encode(header, claims, ECKey.generate_key("P-256", private=True)).encode()


@pytest.mark.parametrize(
    ("make", "said"),
    [
        (forged, "signature that is not the issuer's"),
        (lambda d: forged(d, header={"typ": "at+jwt"}), "is not a JWT of type"),
        (lambda d: b"not a jwt", "is not a signed JWT"),
        (lambda d: b"\xff" * 20, "is not a signed JWT"),
    ],
)
def test_a_list_that_cannot_be_trusted_is_refused_before_any_token(
    deployment: Deployment, host: ListHost, make: Callable[[Deployment], bytes], said: str
) -> None:
    host.body = make(deployment)
    verifier = deployment.verifier(url=host.url)
    with pytest.raises(MalformedResponse) as caught:
        verifier.verify_sync(deployment.token())
    assert said in str(caught.value)
    verifier.close()


def test_no_list_at_first_is_a_failure_to_verify_not_an_acceptance(
    deployment: Deployment, host: ListHost
) -> None:
    host.status = 503
    verifier = deployment.verifier(url=host.url)
    with pytest.raises((NetworkError, ProviderError)):
        verifier.verify_sync(deployment.token())
    verifier.close()


def test_a_list_held_keeps_serving_while_the_issuer_is_down(deployment: Deployment) -> None:
    """Stale-on-error: the revocation the list held is still enforced when refreshes fail."""
    redis = RedisServer()
    server = AuthkestraServer(redis=redis.url)
    try:
        client = server.create_client("caller", "--scope", "read", "--audience", API)
        verifier = JWTVerifier(
            issuer=server.issuer, audience=API, allow_insecure_http=True,
            revocations=Revocations(refresh=0.5),
        )  # fmt: skip
        token = httpx.post(
            server.token_url, data={"grant_type": "client_credentials"}, auth=client, timeout=10
        ).json()["access_token"]
        verifier.verify_sync(token)
        httpx.post(f"{server.issuer}/revoke", data={"token": token}, auth=client, timeout=10)
        refused_within(lambda: verifier.verify_sync(token), 20)
    finally:
        server.stop()
        redis.stop()
    time.sleep(1.5)  # refreshes fail now
    with pytest.raises(InvalidToken, match="revoked"):
        verifier.verify_sync(token)
    verifier.close()


def test_a_list_rendered_anew_with_the_same_names_changes_nothing(
    deployment: Deployment,
) -> None:
    """The server signs a new list every second (new iat, exp); the verifier keeps its
    cached tokens and its generation unless the names change."""
    verifier = deployment.verifier(refresh=0.5)
    verifier.verify_sync(deployment.token())
    watch = verifier.revocations
    assert watch is not None and watch.current is not None
    generation, fetches = watch.generation, watch.fetches
    deadline = time.monotonic() + 20
    while watch.fetches < fetches + 3:  # three more lists fetched
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert watch.generation == generation
    assert verifier.cache is not None and len(verifier.cache) == 1
    verifier.close()
