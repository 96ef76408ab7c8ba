"""DPoP on the resource server (RFC 9449 §7): the checker, and BearerTokenMiddleware with it.

Proofs come from the client's own builder (authkestra._protocol.dpop); bound tokens
from the scripted issuer, with ``cnf.jkt``. Forged proofs are signed by hand.
"""

from __future__ import annotations

import json
from collections.abc import Callable, MutableMapping
from typing import Any

import anyio
import httpx
import pytest
from joserfc.jwk import ECKey

from authkestra import ConfigError, InvalidToken
from authkestra._protocol.dpop import DPoPKey, access_token_hash, generate_dpop_key, proof
from authkestra.resource import AccessToken
from authkestra.resource.asgi import ACCESS_TOKEN_KEY, BearerTokenMiddleware
from authkestra.resource.dpop import (
    DPoPChecker,
    InvalidDPoPProof,
    ReplayCache,
    ReplaySetFull,
    check_dpop,
)
from authkestra.resource.rfc6750 import challenge, refusal
from tests.resource.conftest import MakeVerifier
from tests.resource.support import SigningKey, TestIssuer, keys, sign_compact
from tests.support.clock import FakeClock

URL = "http://api.test/orders"


@pytest.fixture
def key() -> DPoPKey:
    return generate_dpop_key()


@pytest.fixture
def checker(clock: FakeClock) -> DPoPChecker:
    return DPoPChecker(clock=clock)


def now(clock: FakeClock) -> int:
    return int(clock.now().timestamp())


def bound(issuer: TestIssuer, key: DPoPKey, **claims: Any) -> str:
    return issuer.token(cnf={"jkt": key.thumbprint}, **claims)


def access_of(make_verifier: MakeVerifier, raw: str) -> AccessToken:
    return make_verifier().verify_sync(raw)


def forged(
    clock: FakeClock,
    raw: str,
    *,
    header: dict[str, Any] | None = None,
    claims: dict[str, Any] | None = None,
    signer: SigningKey | None = None,
    alg: str | None = None,
) -> str:
    """A proof signed by hand (with the issuer's ES256 key unless told), to forge freely."""
    signer = signer or keys()["es"]
    jwk = {k: v for k, v in signer.public_jwk().items() if k not in ("kid", "alg", "use")}
    head: dict[str, Any] = {"typ": "dpop+jwt", "alg": alg or signer.alg, "jwk": jwk}
    head.update(header or {})
    body: dict[str, Any] = {
        "jti": "j-" + str(id(head)),
        "htm": "GET",
        "htu": URL,
        "iat": now(clock),
        "ath": access_token_hash(raw),
    }
    body.update(claims or {})
    return sign_compact(head, body, signer, alg)


def es_thumbprint() -> str:
    jwk = keys()["es"].public_jwk()
    return str(ECKey.import_key({k: jwk[k] for k in ("kty", "crv", "x", "y")}).thumbprint())


# -- the checker -------------------------------------------------------------------------


def test_a_valid_proof_passes_once(
    issuer: TestIssuer,
    make_verifier: MakeVerifier,
    checker: DPoPChecker,
    clock: FakeClock,
    key: DPoPKey,
) -> None:
    raw = bound(issuer, key)
    access = access_of(make_verifier, raw)
    good = proof(key, "GET", URL + "?page=2#x", now=now(clock), access_token=raw)
    assert checker.check(access, raw, good, method="GET", url=URL + "?page=3") == key.thumbprint
    with pytest.raises(InvalidDPoPProof, match="used before"):
        checker.check(access, raw, good, method="GET", url=URL)
    # A fresh proof for the same token is fine.
    again = proof(key, "GET", URL, now=now(clock), access_token=raw)
    assert checker.check(access, raw, again, method="get", url=URL) == key.thumbprint


def test_htu_scheme_host_and_default_port_compare_loosely(
    issuer: TestIssuer,
    make_verifier: MakeVerifier,
    checker: DPoPChecker,
    clock: FakeClock,
    key: DPoPKey,
) -> None:
    raw = bound(issuer, key)
    access = access_of(make_verifier, raw)
    made = proof(key, "POST", "HTTPS://API.Test:443/orders", now=now(clock), access_token=raw)
    checker.check(access, raw, made, method="POST", url="https://api.test/orders")
    made = proof(key, "POST", "https://api.test/Orders", now=now(clock), access_token=raw)
    with pytest.raises(InvalidDPoPProof, match="htu"):  # the path is case-sensitive
        checker.check(access, raw, made, method="POST", url="https://api.test/orders")


def test_an_unbound_token_needs_no_proof(
    issuer: TestIssuer, make_verifier: MakeVerifier, checker: DPoPChecker
) -> None:
    raw = issuer.token()
    assert checker.check(access_of(make_verifier, raw), raw, None, method="GET", url=URL) is None


@pytest.mark.parametrize(
    "cnf", [["jkt"], {"jkt": 5}, {"jkt": ""}, "x"], ids=["list", "number", "empty", "string"]
)
def test_a_malformed_cnf_is_invalid_token(
    issuer: TestIssuer, make_verifier: MakeVerifier, checker: DPoPChecker, cnf: Any
) -> None:
    raw = issuer.token(cnf=cnf)
    with pytest.raises(InvalidToken) as caught:
        checker.check(access_of(make_verifier, raw), raw, None, method="GET", url=URL)
    assert not isinstance(caught.value, InvalidDPoPProof)


def bad_proofs() -> dict[str, tuple[Callable[..., str], str]]:
    """id -> (build(clock, raw, key), expected reason)."""

    def ok(**changes: Any) -> Callable[..., str]:
        def build(clock: FakeClock, raw: str, key: DPoPKey) -> str:
            settings: dict[str, Any] = {"htm": "GET", "url": URL, "access_token": raw}
            settings.update(changes)
            t = now(clock) + settings.pop("age", 0)
            return proof(key, settings.pop("htm"), settings.pop("url"), now=t, **settings)

        return build

    def hand(**options: Any) -> Callable[..., str]:
        return lambda clock, raw, key: forged(clock, raw, **options)

    return {
        "missing": (lambda c, r, k: None, "no DPoP proof"),  # type: ignore[arg-type,return-value]
        "htm": (ok(htm="POST"), "htm"),
        "htu-host": (ok(url="http://evil.test/orders"), "htu"),
        "htu-path": (ok(url="http://api.test/other"), "htu"),
        "htu-scheme": (ok(url="https://api.test/orders"), "htu"),
        "ath": (ok(access_token="another-token"), "ath"),
        "no-ath": (ok(access_token=None), "ath"),
        "stale": (ok(age=-66), "too old"),
        "future": (ok(age=30), "future"),
        "other-key": (lambda c, r, k: ok()(c, r, generate_dpop_key()), "bound to"),
        "alg-none": (
            lambda c, r, k: forged(c, r, header={"alg": "none"}).rsplit(".", 1)[0] + ".",
            "algorithm",
        ),
        "hs256": (hand(header={"alg": "HS256", "jwk": {"kty": "oct", "k": "c2VjcmV0"}}), "alg"),
        "private-jwk": (
            hand(header={"jwk": keys()["es"].key.as_dict(private=True)}),
            "not a public key",
        ),
        "wrong-kty": (hand(header={"jwk": keys()["rs"].public_jwk()}), "not a key for ES256"),
        "bad-signature": (lambda c, r, k: tampered(forged(c, r)), "signature"),
        "other-signer": (
            hand(header={"jwk": forged_jwk("attacker-es")}),
            "signature",
        ),
        "typ": (hand(header={"typ": "JWT"}), "typ"),
        "no-jwk": (hand(header={"jwk": None}), "jwk"),
        "no-jti": (hand(claims={"jti": None}), "jti"),
        "iat-string": (hand(claims={"iat": "now"}), "iat"),
        "two-parts": (lambda c, r, k: "a.b", "malformed"),
        "not-base64": (lambda c, r, k: "!!.??.**", "malformed"),
    }


def tampered(token: str) -> str:
    """The token with one signature byte changed (its middle, so base64url stays canonical)."""
    head, _, signature = token.rpartition(".")
    middle = len(signature) // 2
    flipped = "A" if signature[middle] != "A" else "B"
    return f"{head}.{signature[:middle]}{flipped}{signature[middle + 1 :]}"


def forged_jwk(name: str) -> dict[str, Any]:
    jwk = keys()[name].public_jwk()
    return {k: v for k, v in jwk.items() if k not in ("kid", "alg", "use")}


BAD = bad_proofs()


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_proof_is_refused(
    issuer: TestIssuer,
    make_verifier: MakeVerifier,
    checker: DPoPChecker,
    clock: FakeClock,
    key: DPoPKey,
    case: str,
) -> None:
    build, reason = BAD[case]
    jkt = es_thumbprint() if case not in ("missing",) and _hand_made(case) else key.thumbprint
    raw = issuer.token(cnf={"jkt": jkt})
    access = access_of(make_verifier, raw)
    with pytest.raises(InvalidDPoPProof, match=reason):
        checker.check(access, raw, build(clock, raw, key), method="GET", url=URL)


def _hand_made(case: str) -> bool:
    return case in {
        "alg-none",
        "hs256",
        "private-jwk",
        "wrong-kty",
        "bad-signature",
        "other-signer",
        "typ",
        "no-jwk",
        "no-jti",
        "iat-string",
    }


def test_a_hand_made_proof_with_the_issuer_key_passes(
    issuer: TestIssuer, make_verifier: MakeVerifier, checker: DPoPChecker, clock: FakeClock
) -> None:
    # The control for the forgeries above: unchanged, it is accepted.
    raw = issuer.token(cnf={"jkt": es_thumbprint()})
    access = access_of(make_verifier, raw)
    assert checker.check(access, raw, forged(clock, raw), method="GET", url=URL)


@pytest.mark.parametrize("name", ["rs", "ed"])
def test_rsa_and_eddsa_proofs_pass(
    issuer: TestIssuer,
    make_verifier: MakeVerifier,
    checker: DPoPChecker,
    clock: FakeClock,
    name: str,
) -> None:
    jwk = forged_jwk(name)
    from joserfc.jwk import OKPKey, RSAKey

    key_type: Any = RSAKey if name == "rs" else OKPKey
    raw = issuer.token(cnf={"jkt": str(key_type.import_key(jwk).thumbprint())})
    access = access_of(make_verifier, raw)
    made = forged(clock, raw, signer=keys()[name])
    assert checker.check(access, raw, made, method="GET", url=URL)


def test_the_window_and_replay_set_expire(
    issuer: TestIssuer,
    make_verifier: MakeVerifier,
    clock: FakeClock,
    key: DPoPKey,
) -> None:
    checker = DPoPChecker(clock=clock, max_age=10, leeway=1, max_remembered_proofs=2)
    raw = bound(issuer, key)
    access = access_of(make_verifier, raw)
    made = proof(key, "GET", URL, now=now(clock), access_token=raw)
    checker.check(access, raw, made, method="GET", url=URL)
    clock.advance(12)
    with pytest.raises(InvalidDPoPProof, match="too old"):
        checker.check(access, raw, made, method="GET", url=URL)
    for _ in range(2):
        fresh = proof(key, "GET", URL, now=now(clock), access_token=raw)
        checker.check(access, raw, fresh, method="GET", url=URL)
    assert len(checker.replay) == 2  # the first proof's entry expired with its window
    third = proof(key, "GET", URL, now=now(clock), access_token=raw)
    with pytest.raises(ReplaySetFull):  # full of live proofs: refused, not forgotten
        checker.check(access, raw, third, method="GET", url=URL)
    clock.advance(13)
    assert checker.check(
        access, raw, proof(key, "GET", URL, now=now(clock), access_token=raw), method="GET", url=URL
    )


def test_replay_cache_forgets_expired_and_stays_bounded() -> None:
    cache = ReplayCache(max_entries=3)
    assert cache.add("a", now=0, expires_at=10)
    assert not cache.add("a", now=5, expires_at=15)
    assert cache.add("a", now=10, expires_at=20)  # expired, so new again
    for jti in "bc":
        assert cache.add(jti, now=11, expires_at=30)
    assert len(cache) == 3
    # Full of live proofs: refused, never accepted by forgetting one that could be replayed.
    with pytest.raises(ReplaySetFull):
        cache.add("d", now=12, expires_at=30)
    assert not cache.add("b", now=12, expires_at=30)
    assert cache.add("d", now=20, expires_at=40)  # "a" expired at 20: room again
    with pytest.raises(ConfigError):
        ReplayCache(0)


def test_check_dpop_function_and_config_errors(
    issuer: TestIssuer, make_verifier: MakeVerifier, clock: FakeClock, key: DPoPKey
) -> None:
    raw = bound(issuer, key)
    access = access_of(make_verifier, raw)
    made = proof(key, "GET", URL, now=now(clock), access_token=raw)
    replay = ReplayCache()
    t = clock.now().timestamp()
    assert check_dpop(access, raw, made, method="GET", url=URL, now=t, replay=replay)
    with pytest.raises(InvalidDPoPProof, match="algorithm"):
        check_dpop(
            access, raw, made, method="GET", url=URL, now=t, replay=replay, algorithms=["EdDSA"]
        )
    for bad in (["HS256"], ["none"], ["ES512"]):
        with pytest.raises(ConfigError):
            DPoPChecker(algorithms=bad)
    with pytest.raises(ConfigError):
        DPoPChecker(max_age=0)


def test_challenges() -> None:
    assert challenge(InvalidDPoPProof("bad")) == (
        'DPoP error="invalid_dpop_proof", error_description="bad",'
        ' algs="ES256 EdDSA Ed25519 RS256 PS256"'
    )
    assert challenge(InvalidToken("bad")) == 'Bearer error="invalid_token", error_description="bad"'
    assert challenge(InvalidToken("bad"), scheme="DPoP").startswith(
        'DPoP error="invalid_token", error_description="bad", algs="'
    )
    status, body, headers = refusal(InvalidDPoPProof("bad"))
    assert status == 401 and body["error"] == "invalid_dpop_proof"
    assert headers["WWW-Authenticate"].startswith("DPoP ")


# -- through BearerTokenMiddleware -------------------------------------------------------


def asgi_app(verifier: Any, checker: DPoPChecker) -> BearerTokenMiddleware:
    async def inner(
        scope: MutableMapping[str, Any], receive: Any, send: Callable[..., Any]
    ) -> None:
        token = scope[ACCESS_TOKEN_KEY]
        payload = json.dumps({"client_id": token.client_id}).encode()
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    return BearerTokenMiddleware(inner, verifier, scopes=["read"], dpop=checker)


def call(
    app: Any, authorization: str | None, proofs: tuple[str, ...] = (), method: str = "GET"
) -> httpx.Response:
    headers: list[tuple[str, str]] = []
    if authorization is not None:
        headers.append(("Authorization", authorization))
    headers += [("DPoP", p) for p in proofs]

    async def run() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
            return await client.request(method, "/orders?page=1", headers=headers)

    return anyio.run(run)


@pytest.fixture
def app(make_verifier: MakeVerifier, checker: DPoPChecker) -> BearerTokenMiddleware:
    return asgi_app(make_verifier(), checker)


def test_middleware_accepts_a_dpop_token_with_its_proof_once(
    app: BearerTokenMiddleware, issuer: TestIssuer, clock: FakeClock, key: DPoPKey
) -> None:
    raw = bound(issuer, key)
    made = proof(key, "GET", URL, now=now(clock), access_token=raw)
    for scheme in ("DPoP", "dpop"):
        made = proof(key, "GET", URL, now=now(clock), access_token=raw)
        response = call(app, f"{scheme} {raw}", (made,))
        assert response.status_code == 200, response.text
        assert response.json() == {"client_id": "billing-service"}
    replayed = call(app, f"DPoP {raw}", (made,))
    assert replayed.status_code == 401
    assert replayed.headers["www-authenticate"].startswith(
        'DPoP error="invalid_dpop_proof", error_description="the DPoP proof was used before'
    )
    assert replayed.json()["error"] == "invalid_dpop_proof"
    # Bearer tokens without cnf still work as before.
    assert call(app, f"Bearer {issuer.token()}").status_code == 200


@pytest.mark.parametrize(
    ("build", "reason"),
    [
        (lambda c, r, k: (), "no DPoP proof"),
        (lambda c, r, k: (proof(k, "POST", URL, now=now(c), access_token=r),), "htm"),
        (
            lambda c, r, k: (proof(k, "GET", "http://api.test/x", now=now(c), access_token=r),),
            "htu",
        ),
        (lambda c, r, k: (proof(k, "GET", URL, now=now(c), access_token="x"),), "ath"),
        (lambda c, r, k: (proof(k, "GET", URL, now=now(c) - 120, access_token=r),), "too old"),
        (
            lambda c, r, k: (proof(generate_dpop_key(), "GET", URL, now=now(c), access_token=r),),
            "bound to",
        ),
        (
            lambda c, r, k: (
                proof(k, "GET", URL, now=now(c), access_token=r),
                proof(k, "GET", URL, now=now(c), access_token=r),
            ),
            "more than one",
        ),
        (lambda c, r, k: (forged(c, r, header={"alg": "HS256"}),), "algorithm"),
    ],
    ids=["missing", "htm", "htu", "ath", "stale", "jkt", "two-proofs", "hs256"],
)
def test_middleware_refuses_a_bad_proof_with_a_dpop_challenge(
    app: BearerTokenMiddleware,
    issuer: TestIssuer,
    clock: FakeClock,
    key: DPoPKey,
    build: Callable[..., tuple[str, ...]],
    reason: str,
) -> None:
    raw = bound(issuer, key)
    response = call(app, f"DPoP {raw}", build(clock, raw, key))
    assert response.status_code == 401
    www = response.headers["www-authenticate"]
    assert www.startswith('DPoP error="invalid_dpop_proof", error_description="'), www
    assert reason in www
    assert response.json()["error"] == "invalid_dpop_proof"


def test_middleware_refuses_a_bound_token_sent_as_bearer(
    app: BearerTokenMiddleware, issuer: TestIssuer, clock: FakeClock, key: DPoPKey
) -> None:
    raw = bound(issuer, key)
    made = proof(key, "GET", URL, now=now(clock), access_token=raw)
    response = call(app, f"Bearer {raw}", (made,))
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith(
        'Bearer error="invalid_token", error_description="the token is DPoP-bound'
    )
    assert response.json()["error"] == "invalid_token"


def test_middleware_refuses_an_unbound_token_sent_as_dpop(
    app: BearerTokenMiddleware, issuer: TestIssuer, clock: FakeClock, key: DPoPKey
) -> None:
    raw = issuer.token()
    made = proof(key, "GET", URL, now=now(clock), access_token=raw)
    response = call(app, f"DPoP {raw}", (made,))
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith(
        'DPoP error="invalid_token", error_description="the token is not DPoP-bound'
    )


def test_middleware_checks_scopes_after_the_proof(
    app: BearerTokenMiddleware, issuer: TestIssuer, clock: FakeClock, key: DPoPKey
) -> None:
    raw = bound(issuer, key, scope="write")
    made = proof(key, "GET", URL, now=now(clock), access_token=raw)
    response = call(app, f"DPoP {raw}", (made,))
    assert response.status_code == 403
    assert response.headers["www-authenticate"].startswith('DPoP error="insufficient_scope"')


def test_a_full_replay_set_is_a_503() -> None:
    from authkestra.resource.dpop import ReplaySetFull

    status, body, _ = refusal(ReplaySetFull("full"))
    assert status == 503 and body["error"] == "temporarily_unavailable"
