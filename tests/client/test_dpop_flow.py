"""DPoP (RFC 9449) in ClientCredentialsFlow: proofs on every request, use_dpop_nonce retries."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
from typing import Any

import httpx
import pytest
from joserfc import jws
from joserfc.jwk import ECKey, OKPKey, RSAKey

from authkestra import ClientCredentialsFlow, ConfigError, OAuthError, RetryPolicy
from authkestra._jose.signing import jws_registry
from authkestra.flow._token_manager import cache_key
from tests.support.hostile_server import HostileServer, Received, Reply

SECRET = "secret-value-123"
NONCE_CHALLENGE = Reply(
    400,
    '{"error": "use_dpop_nonce", "error_description": "nonce required"}',
    headers={"DPoP-Nonce": "as-nonce-1"},
)


def _token(token_type: str = "DPoP", nonce: str | None = "as-nonce-2") -> Reply:
    headers = {"DPoP-Nonce": nonce} if nonce else {}
    body = {"access_token": "dpop-tok", "token_type": token_type, "expires_in": 300}
    return Reply(200, json.dumps(body), headers=headers)


def _proof(received: Received) -> tuple[dict[str, Any], dict[str, Any]]:
    """The request's DPoP proof, verified with the key in its header."""
    token = received.headers["dpop"]
    head = token.split(".")[0]
    header = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    kty: Any = {"EC": ECKey, "OKP": OKPKey}[header["jwk"]["kty"]]
    obj = jws.deserialize_compact(
        token, kty.import_key(header["jwk"]), registry=jws_registry(header["alg"])
    )
    return dict(obj.protected), json.loads(obj.payload)


def _flow(server: HostileServer, **kwargs: Any) -> ClientCredentialsFlow:
    kwargs.setdefault("dpop", True)
    return ClientCredentialsFlow(
        "svc", SECRET, f"{server.url}/token", retry=RetryPolicy(max_attempts=1), **kwargs
    )


def _ath(token: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(token.encode()).digest()).rstrip(b"=").decode()


def test_token_request_carries_a_proof_and_answers_a_nonce_challenge(
    hostile: HostileServer,
) -> None:
    hostile.reply_with(NONCE_CHALLENGE, _token())
    flow = _flow(hostile)
    token = flow.get_token_sync(["read"])
    assert token.token_type == "DPoP"
    assert token.authorization == "DPoP dpop-tok"

    assert [r.path for r in hostile.received] == ["/token", "/token"]
    (h1, c1), (h2, c2) = (_proof(r) for r in hostile.received)
    for header, claims in ((h1, c1), (h2, c2)):
        assert header["typ"] == "dpop+jwt" and header["alg"] == "ES256"
        assert claims["htm"] == "POST"
        assert claims["htu"] == f"{hostile.url}/token"
        assert "ath" not in claims
    assert "nonce" not in c1
    assert c2["nonce"] == "as-nonce-1"
    assert c1["jti"] != c2["jti"]
    assert flow._dpop is not None
    assert flow._dpop.nonces.get(f"{hostile.url}/token") == "as-nonce-2"


def test_a_second_nonce_challenge_is_not_retried_again(hostile: HostileServer) -> None:
    hostile.reply_with(NONCE_CHALLENGE)
    with pytest.raises(OAuthError) as info:
        _flow(hostile).get_token_sync()
    assert info.value.error == "use_dpop_nonce"
    assert len(hostile.received) == 2


def test_a_nonce_challenge_without_a_nonce_is_not_retried(hostile: HostileServer) -> None:
    hostile.reply_with(Reply(400, '{"error": "use_dpop_nonce"}'))
    with pytest.raises(OAuthError):
        _flow(hostile).get_token_sync()
    assert len(hostile.received) == 1


def test_retries_after_server_errors_get_fresh_proofs(hostile: HostileServer) -> None:
    hostile.reply_with(Reply(503, "{}"), _token())
    flow = ClientCredentialsFlow(
        "svc",
        SECRET,
        f"{hostile.url}/token",
        dpop=True,
        retry=RetryPolicy(max_attempts=2, base_backoff=0.0),
    )
    assert flow.get_token_sync().token_type == "DPoP"
    jtis = {_proof(r)[1]["jti"] for r in hostile.received}
    assert len(jtis) == 2


def test_a_bearer_answer_to_a_dpop_request_is_used_as_bearer(
    hostile: HostileServer, caplog: pytest.LogCaptureFixture
) -> None:
    def script(request: Received) -> Reply:
        if request.path == "/token":
            return _token("Bearer", nonce=None)
        return Reply(200, "ok", content_type="text/plain")

    hostile.script = script
    flow = _flow(hostile)
    with caplog.at_level(logging.WARNING, logger="authkestra"):
        token = flow.get_token_sync()
    assert token.token_type == "Bearer"
    assert "does not support DPoP" in caplog.text
    with httpx.Client(auth=flow.auth()) as client:
        assert client.get(f"{hostile.url}/api").status_code == 200
    api = hostile.received[-1]
    assert api.headers["authorization"] == "Bearer dpop-tok"
    assert "dpop" not in api.headers


def _api_script(api_replies: list[Reply]) -> Any:
    """Tokens at /token; the scripted replies, then 200, at the API."""

    def script(request: Received) -> Reply:
        if request.path == "/token":
            return _token()
        return api_replies.pop(0) if api_replies else Reply(200, request.body or b"ok")

    return script


API_NONCE = Reply(
    401,
    '{"error": "use_dpop_nonce"}',
    headers={
        "WWW-Authenticate": 'DPoP error="use_dpop_nonce", error_description="nonce"',
        "DPoP-Nonce": "rs-nonce-1",
    },
)


def _check_api_requests(server: HostileServer, *methods: str) -> list[dict[str, Any]]:
    """Every API request has a proof for its method and URL, with ath and a new jti."""
    api = [r for r in server.received if r.path != "/token"]
    assert len(api) == len(methods)
    claims = []
    for request, method in zip(api, methods, strict=True):
        assert request.headers["authorization"] == "DPoP dpop-tok"
        header, proof_claims = _proof(request)
        assert header["typ"] == "dpop+jwt"
        assert proof_claims["htm"] == method
        assert proof_claims["htu"] == f"{server.url}/api/items"  # no query
        assert proof_claims["ath"] == _ath("dpop-tok")
        claims.append(proof_claims)
    assert len({c["jti"] for c in claims}) == len(claims)
    return claims


def test_httpx_auth_sends_dpop_and_answers_the_api_nonce_challenge(
    hostile: HostileServer,
) -> None:
    hostile.script = _api_script([API_NONCE])
    flow = _flow(hostile)
    with httpx.Client(auth=flow.auth(["read"])) as client:
        response = client.post(f"{hostile.url}/api/items?page=2", content=b"payload")
        assert response.status_code == 200 and response.content == b"payload"
        assert client.get(f"{hostile.url}/api/items").status_code == 200
    first, retry, later = _check_api_requests(hostile, "POST", "POST", "GET")
    # Same origin as the token endpoint: the latest nonce from it is used at first.
    assert first["nonce"] == "as-nonce-2"
    assert retry["nonce"] == "rs-nonce-1"
    assert later["nonce"] == "rs-nonce-1"
    assert [r.body for r in hostile.received if r.path != "/token"][1] == b"payload"
    assert sum(r.path == "/token" for r in hostile.received) == 1


def test_httpx_async_auth_answers_the_api_nonce_challenge(hostile: HostileServer) -> None:
    hostile.script = _api_script([API_NONCE])
    flow = _flow(hostile)

    async def main() -> int:
        async with httpx.AsyncClient(auth=flow.auth()) as client:
            response = await client.get(f"{hostile.url}/api/items?x=1")
            return response.status_code

    assert asyncio.run(main()) == 200
    claims = _check_api_requests(hostile, "GET", "GET")
    assert [c.get("nonce") for c in claims] == ["as-nonce-2", "rs-nonce-1"]


def test_a_streamed_body_is_not_replayed_for_a_nonce(hostile: HostileServer) -> None:
    hostile.script = _api_script([API_NONCE])
    flow = _flow(hostile)

    def body() -> Any:
        yield b"once"

    with httpx.Client(auth=flow.auth()) as client:
        assert client.post(f"{hostile.url}/api/items", content=body()).status_code == 401
    assert len([r for r in hostile.received if r.path != "/token"]) == 1


def test_invalid_token_at_the_api_still_fetches_a_fresh_token(hostile: HostileServer) -> None:
    invalid = Reply(
        401,
        '{"error": "invalid_token"}',
        headers={"WWW-Authenticate": 'DPoP error="invalid_token"'},
    )
    hostile.script = _api_script([invalid])
    flow = _flow(hostile)
    with httpx.Client(auth=flow.auth()) as client:
        # The fresh token is the same string here, so no second API request is sent.
        assert client.get(f"{hostile.url}/api/items").status_code == 401
    assert sum(r.path == "/token" for r in hostile.received) == 2


def test_cache_key_depends_on_dpop_and_on_the_key(hostile: HostileServer) -> None:
    plain = _flow(hostile, dpop=False)
    one, two = _flow(hostile), _flow(hostile)
    keys = {flow._resolve(None, None, None)[0] for flow in (plain, one, two)}
    assert len(keys) == 3
    shared = ECKey.generate_key("P-256", private=True)
    a, b = _flow(hostile, dpop_key=shared), _flow(hostile, dpop_key=shared)
    assert a._resolve(None, None, None)[0] == b._resolve(None, None, None)[0]
    assert a.dpop_thumbprint == shared.thumbprint()
    assert plain.dpop_thumbprint is None
    # Without DPoP the key is what it always was (shared caches keep working).
    spec = plain._resolve(None, None, None)[1]
    assert plain._resolve(None, None, None)[0] == cache_key(f"{hostile.url}/token", spec)


def test_configuration_errors(hostile: HostileServer) -> None:
    with pytest.raises(ConfigError, match="DPoP key"):
        _flow(hostile, dpop_key=RSAKey.generate_key(2048, private=True))
    with pytest.raises(ConfigError, match="dpop"):
        _flow(hostile, dpop="yes")
    okp = OKPKey.generate_key("Ed25519", private=True)
    assert _flow(hostile, dpop=False, dpop_key=okp).dpop_thumbprint == okp.thumbprint()


def test_a_nonce_from_another_origin_after_a_redirect_is_kept_for_that_origin(
    hostile: HostileServer,
) -> None:
    other = hostile.url.replace("127.0.0.1", "localhost")

    def script(request: Received) -> Reply:
        if request.path == "/token":
            return _token()
        if request.path == "/api/away":
            return Reply(307, b"", headers={"Location": f"{other}/api/items"})
        if request.headers.get("host", "").startswith("localhost"):
            return Reply(
                401,
                '{"error": "use_dpop_nonce"}',
                headers={
                    "WWW-Authenticate": 'DPoP error="use_dpop_nonce"',
                    "DPoP-Nonce": "other-origin-nonce",
                },
            )
        return Reply(200, b"ok")

    hostile.script = script
    flow = _flow(hostile)
    with httpx.Client(auth=flow.auth(["read"]), follow_redirects=True) as client:
        assert client.get(f"{hostile.url}/api/away").status_code == 401  # not retried
        assert client.get(f"{hostile.url}/api/items").status_code == 200
    api = [r for r in hostile.received if r.path != "/token"]
    assert [(r.path, r.headers.get("host", "").split(":")[0]) for r in api] == [
        ("/api/away", "127.0.0.1"),
        ("/api/items", "localhost"),
        ("/api/items", "127.0.0.1"),
    ]
    assert "authorization" not in api[1].headers
    # The API's own origin still uses its own latest nonce, not the other origin's.
    assert _proof(api[2])[1]["nonce"] == "as-nonce-2"
