"""DPoP at an API served by several processes (a shared replay set), and behind a proxy.

Two middlewares with their own checkers stand for two API processes; they share a
real redis-server through RedisReplayCache, so a proof accepted by one is refused
by the other. ``public_origin`` lets proofs name the URL clients use when a proxy
rewrites the scheme or Host on the way in.
"""

from __future__ import annotations

import pytest
import redis
from joserfc.jwk import ECKey

from authkestra import ConfigError
from authkestra._protocol.dpop import DPoPKey, generate_dpop_key, proof
from authkestra.resource.dpop import DPoPChecker
from authkestra.resource.redis_replay import RedisReplayCache
from tests.resource.conftest import MakeVerifier
from tests.resource.support import TestIssuer, keys
from tests.resource.test_dpop_checks import URL, asgi_app, bound, call, forged, now
from tests.support.clock import FakeClock


@pytest.fixture
def key() -> DPoPKey:
    return generate_dpop_key()


def test_a_proof_used_on_one_process_is_refused_on_another(
    redis_url: str, make_verifier: MakeVerifier, issuer: TestIssuer, clock: FakeClock, key: DPoPKey
) -> None:
    first = asgi_app(make_verifier(), DPoPChecker(clock=clock, replay=RedisReplayCache(redis_url)))
    second = asgi_app(make_verifier(), DPoPChecker(clock=clock, replay=RedisReplayCache(redis_url)))
    raw = bound(issuer, key)
    made = proof(key, "GET", URL, now=now(clock), access_token=raw)
    assert call(first, f"DPoP {raw}", (made,)).status_code == 200
    for app in (second, first):
        replayed = call(app, f"DPoP {raw}", (made,))
        assert replayed.status_code == 401
        assert "used before" in replayed.headers["www-authenticate"]
    # a fresh proof still works on either
    for app in (second, first):
        fresh = proof(key, "GET", URL, now=now(clock), access_token=raw)
        assert call(app, f"DPoP {raw}", (fresh,)).status_code == 200


def test_jti_are_kept_per_key(
    redis_url: str, make_verifier: MakeVerifier, issuer: TestIssuer, clock: FakeClock
) -> None:
    # A client that reuses another client's jti (it chose it freely) spends only its own.
    app = asgi_app(make_verifier(), DPoPChecker(clock=clock, replay=RedisReplayCache(redis_url)))
    for name in ("es", "attacker-es"):
        signer = keys()[name]
        jwk = {k: v for k, v in signer.public_jwk().items() if k in ("kty", "crv", "x", "y")}
        raw = issuer.token(cnf={"jkt": ECKey.import_key(jwk).thumbprint()})
        made = forged(clock, raw, claims={"jti": "same-jti"}, signer=signer)
        assert call(app, f"DPoP {raw}", (made,)).status_code == 200
        again = forged(clock, raw, claims={"jti": "same-jti"}, signer=signer)
        assert call(app, f"DPoP {raw}", (again,)).status_code == 401


def test_entries_expire_with_the_proof_window(redis_url: str, clock: FakeClock) -> None:
    cache = RedisReplayCache(redis_url)
    t = clock.now().timestamp()
    assert cache.add("k:j", now=t, expires_at=t + 70) is True
    assert cache.add("k:j", now=t, expires_at=t + 70) is False
    ttl = redis.Redis.from_url(redis_url).pttl(
        next(iter(redis.Redis.from_url(redis_url).scan_iter("authkestra:api-dpop:*")))
    )
    assert 60_000 < ttl <= 70_000


def test_redis_down_refuses_with_503_not_a_pass(
    make_verifier: MakeVerifier, issuer: TestIssuer, clock: FakeClock, key: DPoPKey
) -> None:
    from tests.support.redis_server import free_port

    nowhere = RedisReplayCache(f"redis://127.0.0.1:{free_port()}/0")
    app = asgi_app(make_verifier(), DPoPChecker(clock=clock, replay=nowhere))
    raw = bound(issuer, key)
    response = call(app, f"DPoP {raw}", (proof(key, "GET", URL, now=now(clock), access_token=raw),))
    assert response.status_code == 503
    assert response.json()["error"] == "temporarily_unavailable"


def test_public_origin_names_the_url_clients_use(
    make_verifier: MakeVerifier, issuer: TestIssuer, clock: FakeClock, key: DPoPKey
) -> None:
    # The request reaches the app as http://api.test/orders (a proxy terminated TLS and
    # rewrote Host); the client proved https://api.example.com/orders.
    checker = DPoPChecker(clock=clock, public_origin="https://api.example.com")
    app = asgi_app(make_verifier(), checker)
    raw = bound(issuer, key)
    public = proof(key, "GET", "https://api.example.com/orders", now=now(clock), access_token=raw)
    assert call(app, f"DPoP {raw}", (public,)).status_code == 200
    internal = proof(key, "GET", URL, now=now(clock), access_token=raw)
    refused = call(app, f"DPoP {raw}", (internal,))
    assert refused.status_code == 401 and "htu" in refused.headers["www-authenticate"]


@pytest.mark.parametrize(
    "origin",
    [
        "api.example.com",
        "ftp://api.example.com",
        "https://api.example.com/base",
        "https://user@api.example.com",
        "https://api.example.com?x=1",
        "https://",
    ],
)
def test_public_origin_must_be_an_origin(origin: str) -> None:
    with pytest.raises(ConfigError, match="public_origin"):
        DPoPChecker(public_origin=origin)
